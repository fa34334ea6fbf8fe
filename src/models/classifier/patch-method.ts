/**
 * The patch classifier as a method (models/method.ts): supervision added to the anomaly model rather than
 * beside it. An anomaly member (fitted on the good images, as kensa train fits it: PatchCore, or the
 * ensemble of PatchCore and PaDiM) scores every patch; the patch head (patch-head.ts) turns each patch's
 * embedding and anomaly scores into a logit, and the image's probability of NG is its top patch's:
 *
 *   grid    p(patch) = sigmoid(l(patch) / T), l = w · x̃ + Σ_j a_j · s̃_j + b
 *   score   p(NG)   = max over patches of p(patch)                          (the top patch's)
 *
 * The scores s_j, per cell of PatchCore's stride-8 grid: PatchCore's patch distance, and with the
 * ensemble PaDiM's patch score too (its stride-4 scores on the input's grid, the largest of each 2 × 2).
 *
 * The map is exact: an image is NG exactly where a patch's probability passes the threshold, so its
 * regions are those patches. Trained by kensa classify train (pipeline/verbs/classify-patch.ts) on good
 * and NG images: the member's grids of good images out-of-fold, the head cross-fitted so that every
 * image's calibration probability comes from a head that did not see it.
 *
 * Stored: the member's tensors (patchcore.*, and padim.* for the ensemble) and patch-classifier.mean,
 * .std, .weight [C] f32; the scores' means, spreads and weights (numbers for PatchCore alone, as files
 * before the ensemble member; lists for two scores), the bias, the temperature, the member's kind
 * (`anomaly_method`, absent for PatchCore) and the training record in its metadata.
 */
import type { NodeSpec, TensorProto } from '../../onnx/graph.js';
import { float32Tensor, int64Tensor, prefixed, pruned, renameSpecs } from '../../onnx/graph.js';
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
import {
  coarseMax,
  ensemble,
  EnsembleScorer,
  type EnsembleScores,
  type EnsembleState,
} from '../ensemble/method.js';
import { EmbedGraph, EMBEDDING_STRIDE, embeddingDim } from '../patch-embedding.js';
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

/** The anomaly methods a patch head can stand on. */
export const ANOMALY_MEMBERS = ['ensemble', 'patchcore'] as const;
export type AnomalyMember = (typeof ANOMALY_MEMBERS)[number];

export interface PatchClassifierState extends MethodState {
  method: 'patch-classifier';
  channels: [number, number, number];
  /** The anomaly member, fitted on the good images. */
  anomaly: PatchcoreState | EnsembleState;
  head: PatchHeadParams;
  record: ClassifierRecord;
}

/**
 * The head's anomaly scores from a member's own scores, each [B × cells] on PatchCore's stride-8 grid:
 * PatchCore's distances; the ensemble's PatchCore distances and PaDiM's patch scores (largest of 2 × 2).
 */
export function headScores(member: AnomalyMember, scores: PatchScores): Float32Array[] {
  if (member === 'patchcore') return [scores.grid];
  const { memberGrids } = scores as EnsembleScores;
  return [memberGrids[0], coarseMax(memberGrids[1], scores.dims)];
}

/** What a member gives the head for a batch of whole images: the patch rows and the anomaly scores. */
export interface HeadInputs {
  run(
    features: Features,
  ): Promise<{ rows: Float32Array; scores: Float32Array[]; dims: [number, number, number] }>;
  release(): Promise<void>;
}

/** The member's scorer for the head (whole images: the classifier refuses tiles). */
export async function openHeadInputs(anomaly: PatchcoreState | EnsembleState): Promise<HeadInputs> {
  if (anomaly.method === 'patchcore') {
    // PatchCore's distances only, from the embedding that gives the rows (its re-weighted image score
    // is not the classifier's)
    const { bank, dim, channels } = anomaly;
    const scorer = await PatchcoreScorer.open(bank, dim, 1, channels);
    return {
      async run(features) {
        const { rows, grid, dims } = await scorer.distances(features);
        return { rows, scores: [grid], dims };
      },
      release: () => scorer.release(),
    };
  }
  const scorer = (await ensemble.openScorer(anomaly)) as EnsembleScorer;
  let embed: EmbedGraph | undefined;
  try {
    embed = await EmbedGraph.create(anomaly.patchcore.channels);
  } catch (error) {
    await scorer.release();
    throw error;
  }
  return {
    async run(features) {
      const got = await scorer.score(features);
      const [B, h, w] = got.dims;
      return {
        rows: await embed.run(features),
        scores: headScores('ensemble', got),
        dims: [B, h / 2, w / 2],
      };
    },
    release: async () => {
      await scorer.release();
      await embed.release();
    },
  };
}

class PatchClassifierScorer implements Scorer {
  readonly stride = EMBEDDING_STRIDE;
  private readonly folded: FoldedHead;
  constructor(
    private readonly member: HeadInputs,
    private readonly head: PatchHeadParams,
  ) {
    this.folded = foldHead(head);
  }

  /** Whole images only (the classifier refuses tiles), so every cell is the image's own. */
  async score(features: Features): Promise<PatchScores> {
    const { rows, scores, dims } = await this.member.run(features);
    const [B, h, w] = dims;
    const cells = h * w;
    const grid = new Float32Array(B * cells);
    const raw = new Float32Array(B);
    const score = new Float32Array(B);
    for (let b = 0; b < B; b++) {
      const l = patchLogits(this.folded, rows, scores, b * cells, cells);
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

/**
 * The member's graph and the head on its embedding and scores, as the scorer runs them: PatchCore's
 * (prefixed pc/: its embedding pc/emb and distances pc/dist [N·h·w, 1]); the ensemble's, which holds
 * PatchCore's under the same names and PaDiM's patch scores on the input's grid (e/pd_back4 [N, 1, 2h,
 * 2w]), max-pooled 2 × 2 onto PatchCore's cells.
 */
function patchClassifierGraph(state: PatchClassifierState) {
  const { u, v, c } = foldHead(state.head);
  const C = u.length;
  const nodes: NodeSpec[] = [];
  const initializers: TensorProto[] = [];
  const scores = ['pc/dist'];
  if (state.anomaly.method === 'patchcore') {
    const pc = patchcore.exportGraph(state.anomaly);
    nodes.push(...renameSpecs(pc.nodes, pc.initializers, prefixed('pc/', FEATURES)));
    initializers.push(...pc.initializers);
  } else {
    const g = ensemble.exportGraph(state.anomaly);
    nodes.push(
      ...g.nodes,
      {
        op: 'MaxPool',
        inputs: ['e/pd_back4'],
        output: 'h/pd_pool',
        attrs: { kernel_shape: [2, 2], strides: [2, 2] },
      },
      { op: 'Reshape', inputs: ['h/pd_pool', 'h/column'], output: 'h/pd' },
    );
    initializers.push(...g.initializers, int64Tensor('h/column', [-1, 1]));
    scores.push('h/pd');
  }
  nodes.push({ op: 'MatMul', inputs: ['pc/emb', 'h/u'], output: 'h/xu' });
  let sum = 'h/xu';
  scores.forEach((s, j) => {
    nodes.push(
      { op: 'Mul', inputs: [s, `h/v${j}`], output: `h/sv${j}` },
      { op: 'Add', inputs: [sum, `h/sv${j}`], output: `h/l${j}` },
    );
    initializers.push(float32Tensor(`h/v${j}`, [1], Float32Array.of(v[j])));
    sum = `h/l${j}`;
  });
  nodes.push(
    { op: 'Add', inputs: [sum, 'h/c'], output: 'h/l' },
    { op: 'Div', inputs: ['h/l', 'h/temperature'], output: 'h/lt' },
    { op: 'Sigmoid', inputs: ['h/lt'], output: 'h/p' },
    { op: 'Reshape', inputs: ['h/p', 'pc/grid_shape'], output: 'grid' },
    { op: 'Reshape', inputs: ['h/l', 'pc/flat_shape'], output: 'h/l_flat' },
    { op: 'ReduceMax', inputs: ['h/l_flat'], output: 'logit', attrs: { axes: [1], keepdims: 0 } },
    { op: 'Div', inputs: ['logit', 'h/temperature'], output: 'h/logit_t' },
    { op: 'Sigmoid', inputs: ['h/logit_t'], output: 'probability' },
  );
  initializers.push(
    float32Tensor('h/u', [C, 1], u),
    float32Tensor('h/c', [1], Float32Array.of(c)),
    float32Tensor('h/temperature', [1], Float32Array.of(state.head.temperature)),
  );
  // the image score is the head's: the member's own (PatchCore's re-weighting, PaDiM's map) is not needed
  return pruned(nodes, initializers, ['grid', 'probability', 'logit']);
}

/** The head's anomaly scores for a member: PatchCore's distance, and PaDiM's patch score with the ensemble. */
const scoreCount = (member: AnomalyMember) => (member === 'ensemble' ? 2 : 1);

/** What is wrong with a stored patch head, or undefined. */
function patchHeadProblem(head: PatchHeadParams, scores: number): string | undefined {
  const problem = headProblem(PATCH_CLASSIFIER, head);
  if (problem) return problem;
  const parts = [head.scoreWeight, head.scoreMean, head.scoreStd];
  if (!parts.every((p) => Array.isArray(p) && p.length === scores))
    return `its ${PATCH_CLASSIFIER} score weights, means and spreads are not ${scores === 1 ? 'numbers' : `lists of ${scores} numbers`}`;
  if (![...head.scoreWeight, ...head.scoreMean].every((x) => Number.isFinite(x) && Math.abs(x) <= 1e4))
    return `its ${PATCH_CLASSIFIER} score weight or mean is not a plausible number`;
  if (!head.scoreStd.every((x) => x > 0 && x < 1e4))
    return `its ${PATCH_CLASSIFIER} score spread is not a positive number`;
  return undefined;
}

/** A stored score field: a number (one score, as every file before the ensemble member) or a list. */
const readList = (v: unknown): number[] => (Array.isArray(v) ? (v as number[]) : [v as number]);
/** And written back: a number where there is one score, so that a PatchCore head's file is as before. */
const writeList = (v: readonly number[]) => (v.length === 1 ? v[0] : [...v]);

const memberOf = (state: PatchClassifierState): AnomalyMember => state.anomaly.method;
/** The anomaly method of a member (its fitter, scorer and file blocks). */
export const memberMethod = (member: AnomalyMember) =>
  (member === 'ensemble' ? ensemble : patchcore) as unknown as Method<PatchcoreState | EnsembleState>;

export const patchClassifier: Method<PatchClassifierState> = {
  name: PATCH_CLASSIFIER,
  summary:
    "supervised: the anomaly model's patch scores (the ensemble's or PatchCore's) and the patch embedding into a max-pooled patch head, trained on good and NG images",
  learning: 'supervised',
  stride: EMBEDDING_STRIDE,
  map: classifier.map,
  fixedGrid: false,
  ownScore: true,
  scoreRange: [0, 1],
  mapLabel: 'Probability of NG',
  inputGrid: () => undefined,

  check(settings: FitSettings): Estimate {
    return patchClassifierCheck(settings, 'patchcore');
  },

  scoreBytes(state, batch, cells) {
    const member =
      state.anomaly.method === 'patchcore'
        ? patchcore.scoreBytes(state.anomaly, batch, cells)
        : ensemble.scoreBytes(state.anomaly, batch, cells * 4);
    return member + batch * cells * (state.head.weight.length + 3) * 4;
  },

  createFitter() {
    throw new KensaError(
      'E_ARGUMENT',
      'the patch classifier learns from good and NG images: train it with kensa classify train (kensa train fits the anomaly methods, from good images only)',
    );
  },

  async openScorer(state) {
    return new PatchClassifierScorer(await openHeadInputs(state.anomaly), state.head);
  },

  exportGraph(state, owned) {
    if (owned)
      throw new KensaError('E_ARGUMENT', 'the classifier takes whole images; it has no tiled export');
    return { ...patchClassifierGraph(state), grid: 'grid', score: 'probability', peak: 'logit' };
  },

  describe(state) {
    const h = state.head;
    const member = memberOf(state);
    return {
      dim: h.weight.length,
      stride: EMBEDDING_STRIDE,
      pooling: 'max',
      ...(member === 'patchcore' ? {} : { anomaly_method: member }),
      anomaly: memberMethod(member).describe(state.anomaly),
      bias: h.bias,
      score_weight: writeList(h.scoreWeight),
      score_mean: writeList(h.scoreMean),
      score_std: writeList(h.scoreStd),
      temperature: h.temperature,
      ...state.record,
    };
  },

  serialize(state) {
    return {
      tensors: [
        ...memberMethod(memberOf(state)).serialize(state.anomaly).tensors,
        ...headTensors(PATCH_CLASSIFIER, state.head),
      ],
      meta: patchClassifier.describe(state),
    };
  },

  deserialize(tensors, meta, context) {
    if (!isObj(meta)) return 'lacks the patch classifier settings';
    const member = meta.anomaly_method ?? 'patchcore';
    if (!(ANOMALY_MEMBERS as readonly unknown[]).includes(member))
      return `names an anomaly member ${JSON.stringify(member)} (expected ${ANOMALY_MEMBERS.join(' or ')})`;
    const vectors = readHeadVectors(PATCH_CLASSIFIER, tensors, embeddingDim(context.channels));
    if (typeof vectors === 'string') return vectors;
    const anomaly = memberMethod(member as AnomalyMember).deserialize(tensors, meta.anomaly, context);
    if (typeof anomaly === 'string') return anomaly;
    const head: PatchHeadParams = {
      ...vectors,
      scoreMean: readList(meta.score_mean),
      scoreStd: readList(meta.score_std),
      scoreWeight: readList(meta.score_weight),
      bias: meta.bias as number,
      temperature: meta.temperature as number,
    };
    const problem = patchHeadProblem(head, scoreCount(member as AnomalyMember));
    if (problem) return problem;
    const record = readRecord('patch classifier', meta);
    if (typeof record === 'string') return record;
    return {
      method: PATCH_CLASSIFIER,
      channels: context.channels,
      anomaly: anomaly as PatchcoreState | EnsembleState,
      head,
      record,
    };
  },

  history: (state) => state.record.history,
  testMetrics: (state, scores, labels) => classifier.testMetrics!(state as never, scores, labels),
};

/**
 * The memory a patch classifier on `member` needs to fit: the member's, and every image's patch rows
 * and anomaly scores, held while the head trains. `settings` at the member's stride (the ensemble's 4).
 */
export function patchClassifierCheck(settings: FitSettings, member: AnomalyMember): Estimate {
  if (settings.d !== undefined)
    throw new KensaError('E_ARGUMENT', '--d applies to --method padim only, not the patch classifier');
  const m = memberMethod(member).check(settings);
  // the head's cells are PatchCore's (stride 8)
  const cells = member === 'ensemble' ? settings.cellsPerImage / 4 : settings.cellsPerImage;
  const C = embeddingDim(settings.channels);
  const rows = settings.images * cells * (C + scoreCount(member)) * 4;
  return {
    fitBytes: m.fitBytes + rows,
    scoreBytes: m.scoreBytes,
    modelBytes: m.modelBytes + C * 4 * 3,
    detail: tr(
      `${m.detail}; the patches of ${settings.images.toLocaleString('en')} images for the head`,
      `${m.detail}。ヘッド用に画像 ${settings.images.toLocaleString('en')} 枚のパッチ`,
    ),
  };
}

/** The patch classifier as fitting sizes it for a member: at the member's stride, with its estimate. */
export function patchClassifierFitting(member: AnomalyMember): Method<PatchClassifierState> {
  if (member === 'patchcore') return patchClassifier;
  return { ...patchClassifier, stride: ensemble.stride, check: (s) => patchClassifierCheck(s, member) };
}
