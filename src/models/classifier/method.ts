/**
 * The supervised classifier as a method (models/method.ts): the patch embedding it shares with PatchCore
 * (models/patch-embedding.ts, stride 8), averaged over the image, into a logistic-regression head
 * (head.ts) trained on good and NG images.
 *
 *   score   p(NG) = sigmoid(logit / T), logit = w · x̃ + b of the averaged embedding (x̃: standardised)
 *   grid    the class activation per patch, CAM = w · x̃(patch) + b — exact for a linear head on averaged
 *           features (the logit is the mean of the CAM) — as odds relative to the image's peak patch:
 *           exp((CAM − max CAM) / T), 1 at the peak. Through the shared map step and decisions, on the
 *           score's scale, the map shows the image's probability at its peak and falls off with the
 *           activation; an NG image's regions are the patches whose activation is within T · ln(p / t)
 *           of the peak's (p the image's probability, t the threshold): the peak alone just above the
 *           threshold, more of the image the surer the verdict. The map shows where the features pushed
 *           the decision towards NG; it is not a segmentation, and it can point at anything the NG
 *           training images had in common, defect or not.
 *
 * Its fitter takes labels (learning: supervised): kensa classify train (pipeline/verbs/classify.ts) feeds
 * it the features of good and NG images and of their augmented copies. Stored tensors: classifier.mean,
 * classifier.std, classifier.weight [C] f32; the bias, the temperature and the training record in its
 * metadata block.
 */
import { float32Tensor, int64Tensor, type NodeSpec } from '../../onnx/graph.js';
import { KensaError } from '../../util/errors.js';
import {
  featureProblem,
  type Estimate,
  type Features,
  type FitSettings,
  type Method,
  type MethodState,
  type PatchScores,
  type Scorer,
} from '../method.js';
import {
  EmbedGraph,
  EMBEDDING_STRIDE,
  embedInitializers,
  embedNodes,
  embeddingDim,
  embeddingShapes,
} from '../patch-embedding.js';
import {
  balancedLoss,
  calibrationError,
  fitTemperature,
  logitOf,
  MIN_CALIBRATION_IMAGES,
  probability,
  trainHead,
  type EpochRecord,
  type Example,
  type HeadParams,
  type TrainSettings,
} from './head.js';
import { tr } from '../../i18n.js';

/** What training recorded, kept with the model (train's summary, the report's learning curves). */
export interface ClassifierRecord {
  training: {
    good: number;
    ng: number;
    categories: Record<string, number>;
    validation: { good: number; ng: number };
    /** The patch head: folds of its cross-fitting and each fold head's best epoch. */
    folds?: number;
    fold_epochs?: number[];
    augment: string[];
    copies: number;
    epochs: number;
    best_epoch: number;
    learning_rate: number;
    weight_decay: number;
    patience: number;
    seed: number;
  };
  history: EpochRecord[];
  /** Temperature scaling and the expected calibration error of the probabilities before and after it. */
  calibration: { temperature: number; ece_before: number | null; ece_after: number | null };
}

export interface ClassifierState extends MethodState {
  method: 'classifier';
  channels: [number, number, number];
  head: HeadParams;
  record: ClassifierRecord;
}

/** The mean of an image's patch rows (float32 sums, in patch order: the image's feature vector). */
export function pooledRows(rows: Float32Array, from: number, cells: number, C: number): Float32Array {
  const v = new Float32Array(C);
  for (let p = 0; p < cells; p++) for (let c = 0; c < C; c++) v[c] += rows[(from + p) * C + c] / cells;
  return v;
}

/**
 * The class activation of each of an image's patches (raw logit units): CAM = w · x̃(patch) + b, whose
 * mean over the patches is the image's logit.
 */
export function activation(
  head: HeadParams,
  rows: Float32Array,
  from: number,
  cells: number,
  C: number,
): Float64Array {
  const { mean, std, weight, bias } = head;
  const cam = new Float64Array(cells);
  for (let p = 0; p < cells; p++) {
    let z = bias;
    const at = (from + p) * C;
    for (let c = 0; c < C; c++) z += (weight[c] * (rows[at + c] - mean[c])) / std[c];
    cam[p] = z;
  }
  return cam;
}

class ClassifierScorer implements Scorer {
  readonly stride = EMBEDDING_STRIDE;
  constructor(
    private readonly embed: EmbedGraph,
    private readonly head: HeadParams,
  ) {}

  /** Whole images only (the classifier refuses tiles), so every cell is the image's own. */
  async score(features: Features): Promise<PatchScores> {
    const rows = await this.embed.run(features);
    const [B, , h, w] = features[1].dims;
    const C = this.head.weight.length;
    const cells = h * w;
    const grid = new Float32Array(B * cells);
    const raw = new Float32Array(B);
    const score = new Float32Array(B);
    for (let b = 0; b < B; b++) {
      const cam = activation(this.head, rows, b * cells, cells, C);
      let top = -Infinity;
      for (let p = 0; p < cells; p++) top = Math.max(top, cam[p]);
      for (let p = 0; p < cells; p++) grid[b * cells + p] = Math.exp((cam[p] - top) / this.head.temperature);
      const logit = logitOf(this.head, pooledRows(rows, b * cells, cells, C));
      raw[b] = logit;
      score[b] = probability(this.head, logit);
    }
    return { grid, dims: [B, h, w], peaks: { raw, score } };
  }

  release(): Promise<void> {
    return this.embed.release();
  }
}

export interface ClassifierFitSettings {
  channels: [number, number, number];
  train: TrainSettings;
  onEpoch?: (r: EpochRecord) => void;
  onWarning?: (message: string) => void;
}

/** One labelled image's views: the original's feature vector first, then its augmented copies'. */
interface Labelled extends Example {
  category: string;
}

/**
 * The supervised fitter: labelled feature batches in (each element an image or an augmented copy of one,
 * by the image's index), the head out — trained with early stopping on the validation images, its
 * probabilities calibrated on them (temperature scaling), and every validation image's probability.
 */
export class ClassifierFitter {
  private readonly images = new Map<number, Labelled>();
  private embed?: EmbedGraph;

  constructor(private readonly settings: ClassifierFitSettings) {}

  /** Adds a batch: `images[b]` is the element's image; `copy[b]` whether it is an augmented copy of it. */
  async add(
    features: Features,
    images: readonly number[],
    labels: readonly { label: 0 | 1; category: string }[],
    copy: readonly boolean[],
  ): Promise<void> {
    this.embed ??= await EmbedGraph.create(this.settings.channels);
    const rows = await this.embed.run(features);
    const [B, , h, w] = features[1].dims;
    const C = embeddingDim(this.settings.channels);
    for (let b = 0; b < B; b++) {
      const v = pooledRows(rows, b * h * w, h * w, C);
      // an image's copies come after it (they are made from its decoded pixels)
      if (!copy[b]) this.images.set(images[b], { views: [v], ...labels[b] });
      else this.images.get(images[b])?.views.push(v);
    }
  }

  /** Whether an image's features were added (an unreadable one was not). */
  has(image: number): boolean {
    return this.images.has(image);
  }

  /**
   * Trains the head on the images not in `validation` and calibrates it on those in it; `augmentation`
   * (the kinds and copies per training image the caller made) goes into the training record.
   */
  finish(
    validation: ReadonlySet<number>,
    augmentation: { augment: string[]; copies: number },
  ): {
    state: ClassifierState;
    /** Each validation image's probability (the training images', where there is no validation image). */
    calibration: { image: number; label: 0 | 1; score: number }[];
  } {
    const warn = this.settings.onWarning ?? (() => {});
    const trainEx: [number, Labelled][] = [];
    const valEx: [number, Labelled][] = [];
    for (const entry of [...this.images].sort((a, b) => a[0] - b[0]))
      (validation.has(entry[0]) ? valEx : trainEx).push(entry);
    if (!trainEx.some(([, e]) => e.label === 0) || !trainEx.some(([, e]) => e.label === 1))
      throw new KensaError(
        'E_ARGUMENT',
        'after leaving out unreadable images, a class has no training image left',
      );
    const s = this.settings.train;
    const { params, history, bestEpoch } = trainHead(
      trainEx.map(([, e]) => e),
      valEx.map(([, e]) => e),
      s,
      this.settings.onEpoch,
    );
    // temperature scaling and thresholds on the validation images (the training ones, where there are none)
    const calib = valEx.length ? valEx : trainEx;
    const logits = calib.map(([, e]) => logitOf(params, e.views[0]));
    const labels = calib.map(([, e]) => e.label);
    const eceBefore = calibrationError(
      logits.map((z) => probability(params, z)),
      labels,
    );
    params.temperature = fitTemperature(logits, labels);
    if (labels.filter((l) => l === 1).length < MIN_CALIBRATION_IMAGES)
      warn(
        `fewer than ${MIN_CALIBRATION_IMAGES} NG validation images: the probabilities are not calibrated (temperature 1); the thresholds still come from the validation images`,
      );
    const scores = logits.map((z) => probability(params, z));
    const categories: Record<string, number> = {};
    for (const [, e] of [...trainEx, ...valEx]) categories[e.category] = (categories[e.category] ?? 0) + 1;
    const count = (set: [number, Labelled][], label: 0 | 1) =>
      set.filter(([, e]) => e.label === label).length;
    return {
      state: {
        method: 'classifier',
        channels: this.settings.channels,
        head: params,
        record: {
          training: {
            good: count(trainEx, 0),
            ng: count(trainEx, 1),
            categories,
            validation: { good: count(valEx, 0), ng: count(valEx, 1) },
            ...augmentation,
            epochs: history.length,
            best_epoch: bestEpoch,
            learning_rate: s.learningRate,
            weight_decay: s.weightDecay,
            patience: s.patience,
            seed: s.seed,
          },
          history,
          calibration: {
            temperature: params.temperature,
            ece_before: eceBefore,
            ece_after: calibrationError(scores, labels),
          },
        },
      },
      calibration: calib.map(([image, e], i) => ({ image, label: e.label, score: scores[i] })),
    };
  }

  async release(): Promise<void> {
    await this.embed?.release();
  }
}

/**
 * The head on the embedding as ONNX nodes: the CAM of every patch (w/σ folded into one vector a and
 * b − a·μ into one bias), exp((CAM − max CAM) / T) as the grid, and the image's probability from the
 * averaged embedding, as the scorer computes them.
 */
function classifierExportGraph(head: HeadParams): {
  nodes: NodeSpec[];
  initializers: ReturnType<typeof float32Tensor>[];
} {
  const C = head.weight.length;
  const a = new Float32Array(C);
  let b0 = head.bias;
  for (let c = 0; c < C; c++) {
    a[c] = head.weight[c] / head.std[c];
    b0 -= (head.weight[c] * head.mean[c]) / head.std[c];
  }
  const shapes = embeddingShapes();
  const nodes: NodeSpec[] = [
    ...embedNodes(),
    ...shapes.nodes,
    { op: 'MatMul', inputs: ['emb', 'a'], output: 'cam_a' },
    { op: 'Add', inputs: ['cam_a', 'b0'], output: 'cam' },
    { op: 'Reshape', inputs: ['cam', 'flat_shape'], output: 'cam_flat' },
    { op: 'ReduceMax', inputs: ['cam_flat'], output: 'cam_top', attrs: { axes: [1], keepdims: 1 } },
    { op: 'Sub', inputs: ['cam_flat', 'cam_top'], output: 'cam_rel' },
    { op: 'Div', inputs: ['cam_rel', 'temperature'], output: 'cam_t' },
    { op: 'Exp', inputs: ['cam_t'], output: 'odds' },
    { op: 'Reshape', inputs: ['odds', 'grid_shape'], output: 'grid' },
    // the image's logit from its averaged embedding [N, C]
    { op: 'Concat', inputs: ['n', 'minus_one', 'width'], output: 'emb3_shape', attrs: { axis: 0 } },
    { op: 'Reshape', inputs: ['emb', 'emb3_shape'], output: 'emb3' },
    { op: 'ReduceMean', inputs: ['emb3'], output: 'pooled', attrs: { axes: [1], keepdims: 0 } },
    { op: 'MatMul', inputs: ['pooled', 'a'], output: 'logit_a' },
    { op: 'Add', inputs: ['logit_a', 'b0'], output: 'logit2' },
    { op: 'Squeeze', inputs: ['logit2', 'one'], output: 'logit' },
    { op: 'Div', inputs: ['logit', 'temperature'], output: 'logit_t' },
    { op: 'Sigmoid', inputs: ['logit_t'], output: 'probability' },
  ];
  return {
    nodes,
    initializers: [
      ...embedInitializers(C),
      float32Tensor('a', [C, 1], a),
      float32Tensor('b0', [1], Float32Array.of(b0)),
      float32Tensor('temperature', [1], Float32Array.of(head.temperature)),
      ...shapes.initializers,
      int64Tensor('width', [C]),
    ],
  };
}

/**
 * What is wrong with a head's stored standardisation, weights, bias and temperature (`name` as the file
 * names them: classifier, patch-classifier), or undefined.
 */
export function headProblem(
  name: string,
  head: Pick<HeadParams, 'mean' | 'std' | 'weight' | 'bias' | 'temperature'>,
): string | undefined {
  for (const [part, v] of [
    ['mean', head.mean],
    ['weight', head.weight],
  ] as const) {
    const problem = featureProblem(`${name} ${part}`, v);
    if (problem) return problem;
  }
  for (let c = 0; c < head.std.length; c++)
    if (!(head.std[c] > 0 && head.std[c] < 1e4))
      return `its ${name} std holds ${head.std[c]} at element ${c}, not a positive spread (the file is damaged)`;
  if (!Number.isFinite(head.bias) || Math.abs(head.bias) > 1e4)
    return `its ${name} bias is not a plausible number`;
  if (!(head.temperature > 0 && head.temperature < 1e3))
    return `its ${name} temperature is not a positive number`;
  return undefined;
}

export const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

type HeadVectors = Pick<HeadParams, 'mean' | 'std' | 'weight'>;

/** A head's stored vectors as model-file tensors `NAME.mean`, `NAME.std`, `NAME.weight` (float32 [C]). */
export function headTensors(
  name: string,
  head: HeadVectors,
): [string, { dtype: 'float32'; shape: number[]; data: Float32Array }][] {
  return (['mean', 'std', 'weight'] as const).map((part) => [
    `${name}.${part}`,
    { dtype: 'float32', shape: [head[part].length], data: head[part] },
  ]);
}

/** The vectors headTensors stored, each float32 [C]; or what is wrong with them. */
export function readHeadVectors(
  name: string,
  tensors: ReadonlyMap<string, { dtype: string; shape: number[]; data: unknown }>,
  C: number,
): HeadVectors | string {
  const out: Partial<HeadVectors> = {};
  for (const part of ['mean', 'std', 'weight'] as const) {
    const t = tensors.get(`${name}.${part}`);
    if (!t) return `tensor ${name}.${part} is missing`;
    if (t.dtype !== 'float32' || t.shape.length !== 1 || t.shape[0] !== C)
      return `tensor ${name}.${part} is ${t.dtype} [${t.shape.join(', ')}], expected float32 [${C}]`;
    out[part] = t.data as Float32Array;
  }
  return out as HeadVectors;
}

/** The training record in a classifier's metadata block; or what is missing. */
export function readRecord(name: string, meta: Record<string, unknown>): ClassifierRecord | string {
  const record = meta as unknown as ClassifierRecord;
  if (!isObj(record.training) || !Array.isArray(record.history) || !isObj(record.calibration))
    return `lacks the ${name} training record`;
  return { training: record.training, history: record.history, calibration: record.calibration };
}

export const classifier: Method<ClassifierState> = {
  name: 'classifier',
  summary: 'supervised: logistic regression on the averaged patch embedding, trained on good and NG images',
  learning: 'supervised',
  stride: EMBEDDING_STRIDE,
  map: { sigma: 4, padding: 'mirror' },
  fixedGrid: false,
  ownScore: true,
  scoreRange: [0, 1],
  mapLabel: 'Probability of NG',
  inputGrid: () => undefined,

  check(settings: FitSettings): Estimate {
    if (settings.d !== undefined || settings.coreset !== undefined)
      throw new KensaError(
        'E_ARGUMENT',
        '--d and --coreset apply to the anomaly methods, not the classifier',
      );
    const C = embeddingDim(settings.channels);
    const views = settings.images * settings.inputsPerImage;
    return {
      fitBytes: views * C * 4 * 2,
      scoreBytes: C * 4 * 3,
      modelBytes: C * 4 * 3,
      detail: tr(
        `${settings.images.toLocaleString('en')} images of ${C} values`,
        `画像 ${settings.images.toLocaleString('en')} 枚（各 ${C} 値）`,
      ),
    };
  },

  scoreBytes(state, batch, cells) {
    // the embeddings of a batch and their activation grid
    return batch * cells * (embeddingDim(state.channels) + 1) * 4 * 2;
  },

  createFitter() {
    throw new KensaError(
      'E_ARGUMENT',
      'the classifier learns from good and NG images: train it with kensa classify train (kensa train fits the anomaly methods, from good images only)',
    );
  },

  async openScorer(state) {
    return new ClassifierScorer(await EmbedGraph.create(state.channels), state.head);
  },

  exportGraph(state, owned) {
    if (owned)
      throw new KensaError('E_ARGUMENT', 'the classifier takes whole images; it has no tiled export');
    return { ...classifierExportGraph(state.head), grid: 'grid', score: 'probability', peak: 'logit' };
  },

  describe(state) {
    return {
      dim: state.head.weight.length,
      stride: EMBEDDING_STRIDE,
      pooling: 'mean',
      bias: state.head.bias,
      temperature: state.head.temperature,
      ...state.record,
    };
  },

  serialize(state) {
    return { tensors: headTensors('classifier', state.head), meta: classifier.describe(state) };
  },

  deserialize(tensors, meta, { channels }) {
    if (!isObj(meta)) return 'lacks the classifier settings';
    const vectors = readHeadVectors('classifier', tensors, embeddingDim(channels));
    if (typeof vectors === 'string') return vectors;
    const head: HeadParams = {
      ...vectors,
      bias: meta.bias as number,
      temperature: meta.temperature as number,
    };
    const problem = headProblem('classifier', head);
    if (problem) return problem;
    const record = readRecord('classifier', meta);
    if (typeof record === 'string') return record;
    return { method: 'classifier', channels, head, record };
  },

  history: (state) => state.record.history,

  testMetrics(state, scores, labels) {
    return {
      calibration_error: calibrationError(scores, labels),
      log_loss: scores.length
        ? balancedLoss(
            scores.map((p) => Math.log(Math.max(p, 1e-300)) - Math.log(Math.max(1 - p, 1e-300))),
            labels,
          ).loss
        : null,
    };
  },
};
