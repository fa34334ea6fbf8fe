/**
 * The patch classifier as a method (models/method.ts): supervision added to the anomaly model rather than
 * beside it. A PatchCore member (fitted on the good images, as kensa train fits it) scores every patch;
 * the patch head (patch-head.ts) turns each patch's embedding and anomaly score into a logit, and the
 * image's probability of NG is its top patch's:
 *
 *   grid    p(patch) = sigmoid(l(patch) / T), l = w · x̃ + a · s̃ + b      (s: PatchCore's patch distance)
 *   score   p(NG)   = max over patches of p(patch)                          (the top patch's)
 *
 * The map is exact: an image is NG exactly where a patch's probability passes the threshold, so its
 * regions are those patches. Trained by kensa classify train (pipeline/verbs/classify-patch.ts) on good
 * and NG images: the member's grids of good images out-of-fold, the head cross-fitted so that every
 * image's calibration probability comes from a head that did not see it.
 *
 * Stored: the member's tensors (patchcore.*) and patch-classifier.mean, .std, .weight [C] f32; the
 * score's mean, spread and weight, the bias, the temperature and the training record in its metadata.
 */
import type { NodeSpec, TensorProto } from '../../onnx/graph.js';
import { float32Tensor, prefixed, pruned, renameSpecs } from '../../onnx/graph.js';
import { KensaError } from '../../util/errors.js';
import { tr } from '../../i18n.js';
import {
  type Estimate,
  type Features,
  type FitSettings,
  type Method,
  type MethodState,
  type PatchScores,
  type Scorer,
} from '../method.js';
import { EMBEDDING_STRIDE, embeddingDim } from '../patch-embedding.js';
import { patchcore } from '../patchcore/method.js';
import { PatchcoreScorer, type PatchcoreState } from '../patchcore/model.js';
import {
  classifier,
  headProblem,
  headTensors,
  isObj,
  readHeadVectors,
  readRecord,
  type ClassifierRecord,
} from './method.js';
import { foldHead, patchLogits, probabilityOf, type FoldedHead, type PatchHeadParams } from './patch-head.js';

export const PATCH_CLASSIFIER = 'patch-classifier';

export interface PatchClassifierState extends MethodState {
  method: 'patch-classifier';
  channels: [number, number, number];
  /** The anomaly member: PatchCore fitted on the good images. */
  anomaly: PatchcoreState;
  head: PatchHeadParams;
  record: ClassifierRecord;
}

class PatchClassifierScorer implements Scorer {
  readonly stride = EMBEDDING_STRIDE;
  private readonly folded: FoldedHead;
  constructor(
    private readonly member: PatchcoreScorer,
    private readonly head: PatchHeadParams,
  ) {
    this.folded = foldHead(head);
  }

  /** Whole images only (the classifier refuses tiles), so every cell is the image's own. */
  async score(features: Features): Promise<PatchScores> {
    // one embedding for PatchCore's distances and the head
    const { rows, grid: distances, dims } = await this.member.distances(features);
    const [B, h, w] = dims;
    const cells = h * w;
    const grid = new Float32Array(B * cells);
    const raw = new Float32Array(B);
    const score = new Float32Array(B);
    for (let b = 0; b < B; b++) {
      const l = patchLogits(this.folded, rows, distances, b * cells, cells);
      let top = -Infinity;
      for (let p = 0; p < cells; p++) {
        top = Math.max(top, l[p]);
        grid[b * cells + p] = probabilityOf(this.head, l[p]);
      }
      raw[b] = top;
      score[b] = probabilityOf(this.head, top);
    }
    return { grid, dims, peaks: { raw, score } };
  }

  release(): Promise<void> {
    return this.member.release();
  }
}

const FEATURES = new Set(['layer1', 'layer2', 'layer3']);

/** PatchCore's graph (prefixed pc/) and the head on its embedding and distances, as the scorer runs them. */
function patchClassifierGraph(state: PatchClassifierState) {
  const pc = patchcore.exportGraph(state.anomaly);
  const inPc = prefixed('pc/', FEATURES);
  const pcNodes = renameSpecs(pc.nodes, pc.initializers, inPc);
  const pcInits = pc.initializers;
  const { u, v, c } = foldHead(state.head);
  const C = u.length;
  const nodes: NodeSpec[] = [
    ...pcNodes,
    { op: 'MatMul', inputs: ['pc/emb', 'h/u'], output: 'h/xu' },
    { op: 'Mul', inputs: ['pc/dist', 'h/v'], output: 'h/sv' },
    { op: 'Add', inputs: ['h/xu', 'h/sv'], output: 'h/l0' },
    { op: 'Add', inputs: ['h/l0', 'h/c'], output: 'h/l' },
    { op: 'Div', inputs: ['h/l', 'h/temperature'], output: 'h/lt' },
    { op: 'Sigmoid', inputs: ['h/lt'], output: 'h/p' },
    { op: 'Reshape', inputs: ['h/p', 'pc/grid_shape'], output: 'grid' },
    { op: 'Reshape', inputs: ['h/l', 'pc/flat_shape'], output: 'h/l_flat' },
    { op: 'ReduceMax', inputs: ['h/l_flat'], output: 'logit', attrs: { axes: [1], keepdims: 0 } },
    { op: 'Div', inputs: ['logit', 'h/temperature'], output: 'h/logit_t' },
    { op: 'Sigmoid', inputs: ['h/logit_t'], output: 'probability' },
  ];
  const initializers: TensorProto[] = [
    ...pcInits,
    float32Tensor('h/u', [C, 1], u),
    float32Tensor('h/v', [1], Float32Array.of(v)),
    float32Tensor('h/c', [1], Float32Array.of(c)),
    float32Tensor('h/temperature', [1], Float32Array.of(state.head.temperature)),
  ];
  // the image score is the head's: PatchCore's own (its re-weighting) is not needed
  return pruned(nodes, initializers, ['grid', 'probability', 'logit']);
}

/** What is wrong with a stored patch head, or undefined. */
function patchHeadProblem(head: PatchHeadParams): string | undefined {
  const problem = headProblem(PATCH_CLASSIFIER, head);
  if (problem) return problem;
  if (![head.scoreWeight, head.scoreMean].every((x) => Number.isFinite(x) && Math.abs(x) <= 1e4))
    return `its ${PATCH_CLASSIFIER} score weight or mean is not a plausible number`;
  if (!(head.scoreStd > 0 && head.scoreStd < 1e4))
    return `its ${PATCH_CLASSIFIER} score spread is not a positive number`;
  return undefined;
}

export const patchClassifier: Method<PatchClassifierState> = {
  name: PATCH_CLASSIFIER,
  summary:
    "supervised: PatchCore's patch scores and the patch embedding into a max-pooled patch head, trained on good and NG images",
  learning: 'supervised',
  stride: EMBEDDING_STRIDE,
  map: classifier.map,
  fixedGrid: false,
  ownScore: true,
  scoreRange: [0, 1],
  mapLabel: 'Probability of NG',
  inputGrid: () => undefined,

  check(settings: FitSettings): Estimate {
    if (settings.d !== undefined)
      throw new KensaError('E_ARGUMENT', '--d applies to --method padim only, not the patch classifier');
    const member = patchcore.check(settings);
    const C = embeddingDim(settings.channels);
    // every image's patch rows and anomaly scores are held while the head trains
    const rows = settings.images * settings.cellsPerImage * (C + 1) * 4;
    return {
      fitBytes: member.fitBytes + rows,
      scoreBytes: member.scoreBytes,
      modelBytes: member.modelBytes + C * 4 * 3,
      detail: tr(
        `${member.detail}; the patches of ${settings.images.toLocaleString('en')} images for the head`,
        `${member.detail}。ヘッド用に画像 ${settings.images.toLocaleString('en')} 枚のパッチ`,
      ),
    };
  },

  scoreBytes(state, batch, cells) {
    return (
      patchcore.scoreBytes(state.anomaly, batch, cells) + batch * cells * (state.head.weight.length + 2) * 4
    );
  },

  createFitter() {
    throw new KensaError(
      'E_ARGUMENT',
      'the patch classifier learns from good and NG images: train it with kensa classify train (kensa train fits the anomaly methods, from good images only)',
    );
  },

  async openScorer(state) {
    // PatchCore's distances only: its re-weighted image score (neighbours) is not the classifier's
    const { bank, dim, channels } = state.anomaly;
    return new PatchClassifierScorer(await PatchcoreScorer.open(bank, dim, 1, channels), state.head);
  },

  exportGraph(state, owned) {
    if (owned)
      throw new KensaError('E_ARGUMENT', 'the classifier takes whole images; it has no tiled export');
    return { ...patchClassifierGraph(state), grid: 'grid', score: 'probability', peak: 'logit' };
  },

  describe(state) {
    const h = state.head;
    return {
      dim: h.weight.length,
      stride: EMBEDDING_STRIDE,
      pooling: 'max',
      anomaly: patchcore.describe(state.anomaly),
      bias: h.bias,
      score_weight: h.scoreWeight,
      score_mean: h.scoreMean,
      score_std: h.scoreStd,
      temperature: h.temperature,
      ...state.record,
    };
  },

  serialize(state) {
    return {
      tensors: [...patchcore.serialize(state.anomaly).tensors, ...headTensors(PATCH_CLASSIFIER, state.head)],
      meta: patchClassifier.describe(state),
    };
  },

  deserialize(tensors, meta, context) {
    if (!isObj(meta)) return 'lacks the patch classifier settings';
    const vectors = readHeadVectors(PATCH_CLASSIFIER, tensors, embeddingDim(context.channels));
    if (typeof vectors === 'string') return vectors;
    const anomaly = patchcore.deserialize(tensors, meta.anomaly, context);
    if (typeof anomaly === 'string') return anomaly;
    const head: PatchHeadParams = {
      ...vectors,
      scoreMean: meta.score_mean as number,
      scoreStd: meta.score_std as number,
      scoreWeight: meta.score_weight as number,
      bias: meta.bias as number,
      temperature: meta.temperature as number,
    };
    const problem = patchHeadProblem(head);
    if (problem) return problem;
    const record = readRecord('patch classifier', meta);
    if (typeof record === 'string') return record;
    return { method: PATCH_CLASSIFIER, channels: context.channels, anomaly, head, record };
  },

  history: (state) => state.record.history,
  testMetrics: (state, scores, labels) => classifier.testMetrics!(state as never, scores, labels),
};
