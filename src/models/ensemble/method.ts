/**
 * PatchCore and PaDiM scored together (models/method.ts), on one backbone pass: each image's score is the
 * mean of its members' image scores, each in units of its own spread over the calibration images,
 *
 *   score = ( s_patchcore / σ_patchcore + s_padim / σ_padim ) / 2,
 *
 * s_patchcore anomalib's re-weighted nearest-neighbour score, s_padim the maximum of PaDiM's smoothed map
 * (each member's own image score, as when it is a model alone), σ the standard deviation of that member's
 * out-of-fold calibration scores (`weigh`, after calibration). This is the mean of the members' z-scores
 * plus a constant, so it ranks images as those z-scores do (BENCHMARKS.md, *Separation*: the only
 * combination that catches more at `fpr0` on both shared data sets), and it stays positive.
 * The grid is the same mean per patch at PaDiM's stride 4 (PatchCore's stride-8 cells repeated ×2).
 *
 * Calibration: PatchCore's fold models (the bank without the fold's rows) with PaDiM's leave-one-out (each
 * image against the Gaussians of every other image), both out of sample, in one scoring pass; PaDiM's
 * fold models where leave-one-out does not apply (tiles).
 *
 * Stored tensors: those of both members (patchcore.memory_bank; padim.mean, padim.precision_packed,
 * padim.channel_index); metadata: ensemble.patchcore, ensemble.padim (the members' blocks) and
 * ensemble.scales.
 *
 * The PaDiM member's image score needs the map step (postprocess/anomaly-map.ts, pure arithmetic): the one
 * place a method looks past its grid, because that is PaDiM's own image score.
 */
import { float32Tensor, int64Tensor, type NodeSpec, type TensorProto } from '../../onnx/graph.js';
import { MapStep, mapStepNodes, type MapSettings } from '../../postprocess/anomaly-map.js';
import { tr } from '../../i18n.js';
import { KensaError } from '../../util/errors.js';
import type {
  CellRect,
  Features,
  Fitter,
  FitSettings,
  Fold,
  Method,
  MethodGraph,
  MethodState,
  PatchScores,
  Scorer,
} from '../method.js';
import { padim } from '../padim/method.js';
import type { PadimState } from '../padim/model.js';
import { patchcore } from '../patchcore/method.js';
import type { PatchcoreState } from '../patchcore/model.js';

export interface EnsembleState extends MethodState {
  method: 'ensemble';
  patchcore: PatchcoreState;
  padim: PadimState;
  /**
   * Each member's spread: the standard deviation of its image scores over the calibration images
   * ([PatchCore, PaDiM]). [1, 1] until `weigh` sets them from the calibration.
   */
  scales: [number, number];
  /** How the PaDiM member's calibration scores were made: leave-one-out, or fold models (tiles). */
  padimCalibration: 'loo' | 'kfold';
}

/** The members, in the order of `scales` and of the calibration's member scores. */
export const MEMBERS = ['patchcore', 'padim'] as const;

const STRIDE = padim.stride;
/** PatchCore's cells per ensemble cell, along each axis. */
const RATIO = patchcore.stride / padim.stride;
const PADIM_MAP: MapSettings = padim.map;

/** The members' weights: each score over its spread, averaged. */
export function weights(scales: readonly [number, number]): [number, number] {
  return [1 / (2 * scales[0]), 1 / (2 * scales[1])];
}

/** The cells of PatchCore's grid that an input owns, from those of the ensemble's (multiples of 16 px). */
function coarse(owned: readonly CellRect[]): CellRect[] {
  return owned.map((o) => ({ y0: o.y0 / RATIO, y1: o.y1 / RATIO, x0: o.x0 / RATIO, x1: o.x1 / RATIO }));
}

/** Settings as each member sees them: its own stride's grid, and only the options that are its own. */
function memberSettings(settings: FitSettings): { pc: FitSettings; pd: FitSettings } {
  const cells = RATIO * RATIO;
  return {
    pc: {
      ...settings,
      d: undefined,
      grid: settings.grid && [settings.grid[0] / RATIO, settings.grid[1] / RATIO],
      cellsPerInput: settings.cellsPerInput / cells,
      cellsPerImage: settings.cellsPerImage / cells,
    },
    pd: { ...settings, coreset: undefined, neighbors: undefined },
  };
}

class EnsembleScorer implements Scorer {
  readonly stride = STRIDE;
  readonly batch?: number;
  private readonly steps = new Map<string, MapStep>();

  /** `keep`: a member scorer that belongs to someone else (the fitter's leave-one-out) and outlives this one. */
  constructor(
    private readonly pc: Scorer,
    private readonly pd: Scorer,
    private readonly scales: readonly [number, number],
    private readonly keep?: Scorer,
  ) {
    const batches = [pc.batch, pd.batch].filter((b): b is number => b !== undefined);
    this.batch = batches.length ? Math.min(...batches) : undefined;
  }

  private step(h: number, w: number): MapStep {
    const key = `${h}x${w}`;
    let step = this.steps.get(key);
    if (!step) this.steps.set(key, (step = new MapStep(h, w, h * STRIDE, w * STRIDE, PADIM_MAP)));
    return step;
  }

  async score(features: Features, owned?: readonly CellRect[]): Promise<PatchScores> {
    const a = await this.pc.score(features, owned && coarse(owned));
    const b = await this.pd.score(features, owned);
    const [B, h, w] = b.dims;
    const [, h8, w8] = a.dims;
    if (h8 * RATIO !== h || w8 * RATIO !== w || !a.peaks)
      throw new KensaError('E_RUNTIME', `the members' grids do not match (${h8}×${w8} and ${h}×${w})`);
    const [wa, wb] = weights(this.scales);
    const grid = new Float32Array(B * h * w);
    const step = this.step(h, w);
    const map = new Float32Array(h * STRIDE * w * STRIDE);
    const W = w * STRIDE;
    const members = MEMBERS.map(() => ({ score: new Float32Array(B), low: new Float32Array(B) }));
    const combined = new Float32Array(B);
    for (let e = 0; e < B; e++) {
      const o = owned?.[e] ?? { y0: 0, y1: h, x0: 0, x1: w };
      let lowA = Infinity;
      let lowB = Infinity;
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const va = a.grid[(e * h8 + Math.floor(y / RATIO)) * w8 + Math.floor(x / RATIO)];
          const vb = b.grid[(e * h + y) * w + x];
          grid[(e * h + y) * w + x] = wa * va + wb * vb;
          if (y >= o.y0 && y < o.y1 && x >= o.x0 && x < o.x1) {
            if (va < lowA) lowA = va;
            if (vb < lowB) lowB = vb;
          }
        }
      // PaDiM's own image score: the maximum of its smoothed map, over the pixels this input owns
      step.apply(b.grid, map, e * h * w);
      let peak = -Infinity;
      for (let y = o.y0 * STRIDE; y < o.y1 * STRIDE; y++)
        for (let x = o.x0 * STRIDE; x < o.x1 * STRIDE; x++) if (map[y * W + x] > peak) peak = map[y * W + x];
      members[0].score[e] = a.peaks.score[e];
      members[0].low[e] = lowA;
      members[1].score[e] = peak;
      members[1].low[e] = lowB;
      combined[e] = wa * a.peaks.score[e] + wb * peak;
    }
    return { grid, dims: [B, h, w], peaks: { raw: combined, score: combined, members } };
  }

  async release(): Promise<void> {
    await this.pc.release();
    if (this.pd !== this.keep) await this.pd.release();
  }
}

class EnsembleFitter implements Fitter<EnsembleState> {
  /** PaDiM's leave-one-out scorer, made with the first fold and shared by every fold; null where it has none. */
  private loo?: Scorer | null;
  private usedLoo = false;

  constructor(
    private readonly pc: Fitter<PatchcoreState>,
    private readonly pd: Fitter<PadimState>,
    private readonly scales: [number, number] = [1, 1],
  ) {}

  get timings(): Record<string, number> | undefined {
    return this.pc.timings;
  }

  async add(features: Features, images: readonly number[], owned: readonly CellRect[]): Promise<void> {
    await this.pc.add(features, images, coarse(owned));
    await this.pd.add(features, images, owned);
  }

  async without(fold: Fold, onProgress?: (done: number, total: number) => void): Promise<Scorer> {
    const a = await this.pc.without(fold, onProgress);
    try {
      if (this.loo === undefined) this.loo = (await this.pd.leaveOneOut?.(onProgress)) ?? null;
      this.usedLoo = this.loo !== null;
      const b = this.loo ?? (await this.pd.without(fold, onProgress));
      return new EnsembleScorer(a, b, this.scales, this.loo ?? undefined);
    } catch (error) {
      await a.release();
      throw error;
    }
  }

  async finish(onProgress?: (done: number, total: number) => void): Promise<EnsembleState> {
    await this.releaseLoo();
    const pc = await this.pc.finish(onProgress);
    const pd = await this.pd.finish(onProgress);
    return {
      method: 'ensemble',
      patchcore: pc,
      padim: pd,
      scales: this.scales,
      padimCalibration: this.usedLoo ? 'loo' : 'kfold',
    };
  }

  private async releaseLoo(): Promise<void> {
    const loo = this.loo;
    this.loo = undefined;
    await loo?.release();
  }

  async release(): Promise<void> {
    await this.releaseLoo();
    await this.pc.release();
    await this.pd.release();
  }
}

/** The spread of a member's calibration scores: their standard deviation (their mean where all are equal). */
export function spread(scores: readonly number[]): number {
  const n = scores.length;
  const mean = scores.reduce((s, v) => s + v, 0) / n;
  const sd = Math.sqrt(scores.reduce((s, v) => s + (v - mean) ** 2, 0) / n);
  return sd > 0 ? sd : mean > 0 ? mean : 1;
}

/** A sub-graph's values renamed with a prefix, except those it shares with the rest of the graph. */
function renamed(nodes: NodeSpec[], inits: TensorProto[], prefix: string, keep: ReadonlySet<string>) {
  const name = (n: string) => (n === '' || keep.has(n) ? n : `${prefix}${n}`);
  for (const t of inits) t.name = name(t.name);
  return {
    nodes: nodes.map((n) => ({
      ...n,
      inputs: n.inputs.map(name),
      output: typeof n.output === 'string' ? name(n.output) : n.output.map(name),
    })),
    inits,
    name,
  };
}

const FEATURES = new Set(['layer1', 'layer2', 'layer3']);
function ensembleExportGraph(state: EnsembleState, owned?: string): MethodGraph {
  const keep = new Set([...FEATURES, ...(owned ? [owned, 'e/owned_pc'] : [])]);
  const nodes: NodeSpec[] = [];
  const initializers: TensorProto[] = [];
  const [wa, wb] = weights(state.scales);
  // PatchCore's owned cells: every second of the ensemble's (tiles own multiples of 16 pixels)
  if (owned)
    nodes.push({
      op: 'Slice',
      inputs: [owned, 'e/zero2', 'e/big2', 'e/axes12', 'e/two2'],
      output: 'e/owned_pc',
    });
  const pcGraph = patchcore.exportGraph(state.patchcore, owned ? 'e/owned_pc' : undefined);
  const pc = renamed(pcGraph.nodes, pcGraph.initializers, 'pc/', keep);
  const pdGraph = padim.exportGraph(state.padim);
  const pd = renamed(pdGraph.nodes, pdGraph.initializers, 'pd/', keep);
  nodes.push(...pc.nodes, ...pd.nodes);
  initializers.push(...pc.inits, ...pd.inits);
  const pcGrid = pc.name(pcGraph.grid);
  const pdGrid = pd.name(pdGraph.grid);
  // PaDiM's smoothed map at the input's size (4 × layer1's), and its maximum over the owned pixels
  const step = mapStepNodes(PADIM_MAP, pdGrid, { hw: 'e/hw' });
  const ms = renamed(step.nodes, step.initializers, 'pdmap/', new Set([pdGrid, 'e/hw']));
  const pdMap = ms.name(step.map);
  nodes.push(
    { op: 'Shape', inputs: ['layer1'], output: 'e/l1_shape' },
    { op: 'Slice', inputs: ['e/l1_shape', 'e/two', 'e/four'], output: 'e/l1_hw' },
    { op: 'Mul', inputs: ['e/l1_hw', 'e/stride'], output: 'e/hw' },
    ...ms.nodes,
  );
  initializers.push(...ms.inits);
  const resize = (input: string, output: string, scale: number): NodeSpec[] => [
    { op: 'Unsqueeze', inputs: [input, 'e/one'], output: `${output}_4d` },
    {
      op: 'Resize',
      inputs: [`${output}_4d`, '', `e/scales${scale}`],
      output: `${output}_up`,
      attrs: { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' },
    },
    { op: 'Squeeze', inputs: [`${output}_up`, 'e/one'], output },
  ];
  // distances are ≥ 0 and so is their smoothed map: zeroing the pixels an input does not own leaves the
  // owned maximum
  if (owned)
    nodes.push(...resize(owned, 'e/owned_px', STRIDE), {
      op: 'Mul',
      inputs: ['e/owned_px', pdMap],
      output: 'e/pd_masked',
    });
  nodes.push(
    {
      op: 'ReduceMax',
      inputs: [owned ? 'e/pd_masked' : pdMap],
      output: 'e/pd_score',
      attrs: { axes: [1, 2], keepdims: 0 },
    },
    // the grid: PatchCore's cells repeated ×2, each member over its spread
    ...resize(pcGrid, 'e/pc_grid', RATIO),
    { op: 'Mul', inputs: ['e/pc_grid', 'e/wa'], output: 'e/pc_w' },
    { op: 'Mul', inputs: [pdGrid, 'e/wb'], output: 'e/pd_w' },
    { op: 'Add', inputs: ['e/pc_w', 'e/pd_w'], output: 'e/grid' },
    { op: 'Mul', inputs: [pc.name(pcGraph.score!), 'e/wa'], output: 'e/pc_s' },
    { op: 'Mul', inputs: ['e/pd_score', 'e/wb'], output: 'e/pd_s' },
    { op: 'Add', inputs: ['e/pc_s', 'e/pd_s'], output: 'e/score' },
  );
  initializers.push(
    int64Tensor('e/one', [1]),
    int64Tensor('e/two', [2]),
    int64Tensor('e/four', [4]),
    int64Tensor('e/stride', [STRIDE]),
    float32Tensor(`e/scales${RATIO}`, [4], Float32Array.of(1, 1, RATIO, RATIO)),
    float32Tensor('e/wa', [], Float32Array.of(wa)),
    float32Tensor('e/wb', [], Float32Array.of(wb)),
    ...(owned
      ? [
          int64Tensor('e/zero2', [0, 0]),
          int64Tensor('e/big2', [1 << 30, 1 << 30]),
          int64Tensor('e/axes12', [1, 2]),
          int64Tensor('e/two2', [RATIO, RATIO]),
          float32Tensor(`e/scales${STRIDE}`, [4], Float32Array.of(1, 1, STRIDE, STRIDE)),
        ]
      : []),
  );
  return { nodes, initializers, grid: 'e/grid', score: 'e/score', peak: 'e/score' };
}

export const ensemble: Method<EnsembleState> = {
  name: 'ensemble',
  summary: 'PatchCore and PaDiM scored together, each score over its own calibration spread',
  learning: 'unsupervised',
  scoreRange: [0, Infinity],
  ownScore: true,
  stride: STRIDE,
  map: PADIM_MAP,
  fixedGrid: true,
  inputGrid: (state) => padim.inputGrid(state.padim),

  check(settings) {
    if (!settings.grid)
      throw new KensaError(
        'E_ARGUMENT',
        tr(
          'the ensemble holds a PaDiM model, one Gaussian per patch position, so every network input must have the same size; ' +
            'with the aspect ratio kept, images of different sizes give different grids. ' +
            'Use --square for a square resize, --tile T, or --method patchcore',
          'アンサンブルは PaDiM のモデル（パッチ位置ごとに 1 つのガウス分布）を含むため、すべてのネットワーク入力が同じ大きさでなければなりません。' +
            '縦横比を保つと、大きさの違う画像は違う格子になります。' +
            '--square（正方形に変形）、--tile T、または --method patchcore を使ってください',
        ),
      );
    const { pc, pd } = memberSettings(settings);
    const a = patchcore.check(pc);
    const b = padim.check(pd);
    return {
      fitBytes: a.fitBytes + b.fitBytes,
      scoreBytes: a.scoreBytes + b.scoreBytes,
      modelBytes: a.modelBytes + b.modelBytes,
      detail: `PatchCore: ${a.detail}; PaDiM: ${b.detail}`,
    };
  },

  scoreBytes(state, batch, cells) {
    return (
      patchcore.scoreBytes(state.patchcore, batch, cells / (RATIO * RATIO)) +
      padim.scoreBytes(state.padim, batch, cells) +
      2 * batch * cells * 4
    );
  },

  createFitter(settings) {
    const { pc, pd } = memberSettings(settings);
    return new EnsembleFitter(patchcore.createFitter(pc), padim.createFitter(pd));
  },

  async resume(state, settings, onProgress) {
    const { pc, pd } = memberSettings(settings);
    const a = await patchcore.resume!(state.patchcore, pc, onProgress);
    try {
      return new EnsembleFitter(a, await padim.resume!(state.padim, pd, onProgress), state.scales);
    } catch (error) {
      await a.release();
      throw error;
    }
  },

  async openScorer(state) {
    const a = await patchcore.openScorer(state.patchcore);
    try {
      return new EnsembleScorer(a, await padim.openScorer(state.padim), state.scales);
    } catch (error) {
      await a.release();
      throw error;
    }
  },

  exportGraph: ensembleExportGraph,

  /**
   * The members' spreads from the calibration (each image's member scores, as the calibration scorers
   * gave them), and the calibration images' scores and map minima with them.
   */
  weigh(state, members) {
    const scales = MEMBERS.map((_, m) => spread(members.map((p) => p[m].score))) as [number, number];
    const w = weights(scales);
    return {
      state: { ...state, scales },
      scores: members.map((p) => w[0] * p[0].score + w[1] * p[1].score),
      lows: members.map((p) => w[0] * p[0].low + w[1] * p[1].low),
    };
  },

  describe(state) {
    return {
      patchcore: patchcore.describe(state.patchcore),
      padim: padim.describe(state.padim),
      scales: { patchcore: state.scales[0], padim: state.scales[1] },
      padim_calibration: state.padimCalibration,
    };
  },

  serialize(state) {
    return {
      tensors: [...patchcore.serialize(state.patchcore).tensors, ...padim.serialize(state.padim).tensors],
      meta: ensemble.describe(state),
    };
  },

  deserialize(tensors, meta, context) {
    const m = meta as {
      patchcore?: unknown;
      padim?: unknown;
      scales?: { patchcore?: unknown; padim?: unknown };
      padim_calibration?: unknown;
    };
    if (typeof m !== 'object' || m === null) return 'lacks the ensemble settings';
    const scales = [m.scales?.patchcore, m.scales?.padim];
    if (!scales.every((s) => typeof s === 'number' && Number.isFinite(s) && s > 0))
      return "lacks the ensemble's member scales (positive numbers)";
    const pc = patchcore.deserialize(tensors, m.patchcore, context);
    if (typeof pc === 'string') return pc;
    const pd = padim.deserialize(tensors, m.padim, context);
    if (typeof pd === 'string') return pd;
    return {
      method: 'ensemble',
      patchcore: pc,
      padim: pd,
      scales: scales as [number, number],
      padimCalibration: m.padim_calibration === 'loo' ? 'loo' : 'kfold',
    };
  },
};
