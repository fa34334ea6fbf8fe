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
 * Inputs of any size: PaDiM keeps one Gaussian per position of one grid (the inputs' own where the
 * training images share one size, else a square of the typical input's cells); an input of another size
 * has its features resampled to that grid (bilinear, `onGrid`: where a square resize of the image would
 * put them) and PaDiM's patch scores resampled back to the input's grid. PatchCore sees the input as it is.
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
import {
  float32Tensor,
  int64Tensor,
  prefixed,
  renameSpecs,
  type NodeSpec,
  type TensorProto,
} from '../../onnx/graph.js';
import { MapStep, mapStepNodes, upsampleBilinear, type MapSettings } from '../../postprocess/anomaly-map.js';
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

/**
 * PaDiM's grid for the settings: the inputs' own where they all have one size, else a square of the
 * typical input's cell count (sides multiples of 4, as PaDiM's stride-16 map needs), to which every
 * input's features are resampled (`onGrid`), as a square resize of the image would place them.
 */
export function padimGrid(
  settings: Pick<FitSettings, 'grid' | 'uniformGrid' | 'cellsPerInput'>,
): [number, number] {
  const own = settings.grid ?? settings.uniformGrid;
  if (own) return own;
  const side = Math.max(4, Math.round(Math.sqrt(settings.cellsPerInput) / 4) * 4);
  return [side, side];
}

/** Settings as each member sees them: its own stride's grid, and only the options that are its own. */
function memberSettings(settings: FitSettings): { pc: FitSettings; pd: FitSettings } {
  const cells = RATIO * RATIO;
  const grid = padimGrid(settings);
  return {
    pc: {
      ...settings,
      d: undefined,
      grid: settings.grid && [settings.grid[0] / RATIO, settings.grid[1] / RATIO],
      uniformGrid: undefined,
      cellsPerInput: settings.cellsPerInput / cells,
      cellsPerImage: settings.cellsPerImage / cells,
    },
    pd: { ...settings, grid, cellsPerInput: grid[0] * grid[1], coreset: undefined, neighbors: undefined },
  };
}

/**
 * The features on PaDiM's grid [H, W] (stride 4; the stride-8 and stride-16 maps at H/2 and H/4):
 * bilinear with half-pixel centres, as ONNX Resize (linear, half_pixel) computes it in the export. The
 * same features where they have that grid already.
 */
export function onGrid(features: Features, [H, W]: readonly [number, number]): Features {
  const [, , h, w] = features[0].dims;
  if (h === H && w === W) return features;
  return features.map((m, k) => {
    const [B, C, mh, mw] = m.dims;
    const [th, tw] = [H >> k, W >> k];
    const data = new Float32Array(B * C * th * tw);
    for (let i = 0; i < B * C; i++)
      upsampleBilinear(
        m.data.subarray(i * mh * mw, (i + 1) * mh * mw),
        mh,
        mw,
        th,
        tw,
        data.subarray(i * th * tw, (i + 1) * th * tw),
      );
    return { data, dims: [B, C, th, tw] };
  }) as unknown as Features;
}

/** The ensemble's scores with each member's own patch scores (the patch classifier's inputs). */
export interface EnsembleScores extends PatchScores {
  /** PatchCore's distances [B, h/2, w/2] (its stride 8) and PaDiM's patch scores [B, h, w] on the input's grid. */
  memberGrids: [Float32Array, Float32Array];
}

/** The largest of each 2 × 2 block of cells: a grid [B, h, w] at the ensemble's stride on PatchCore's. */
export function coarseMax(grid: Float32Array, [B, h, w]: readonly [number, number, number]): Float32Array {
  const [h8, w8] = [h / RATIO, w / RATIO];
  const out = new Float32Array(B * h8 * w8).fill(-Infinity);
  for (let e = 0; e < B; e++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const at = (e * h8 + Math.floor(y / RATIO)) * w8 + Math.floor(x / RATIO);
        const v = grid[(e * h + y) * w + x];
        if (v > out[at]) out[at] = v;
      }
  return out;
}

export class EnsembleScorer implements Scorer {
  readonly stride = STRIDE;
  readonly batch?: number;
  /** PaDiM's map step on its own grid (its image score). */
  private readonly step: MapStep;

  /** `keep`: a member scorer that belongs to someone else (the fitter's leave-one-out) and outlives this one. */
  constructor(
    private readonly pc: Scorer,
    private readonly pd: Scorer,
    /** PaDiM's grid (stride 4). */
    private readonly grid: readonly [number, number],
    private readonly scales: readonly [number, number],
    private readonly keep?: Scorer,
  ) {
    const batches = [pc.batch, pd.batch].filter((b): b is number => b !== undefined);
    this.batch = batches.length ? Math.min(...batches) : undefined;
    const [H, W] = grid;
    this.step = new MapStep(H, W, H * STRIDE, W * STRIDE, PADIM_MAP);
  }

  async score(features: Features, owned?: readonly CellRect[]): Promise<EnsembleScores> {
    const a = await this.pc.score(features, owned && coarse(owned));
    const [B, , h, w] = features[0].dims;
    const [H, W] = this.grid;
    // PaDiM on its own grid: the features resampled to it where the input has another size (then the
    // input is whole, never a tile: tiles have the grid's size)
    const resampled = h !== H || w !== W;
    const b = await this.pd.score(onGrid(features, this.grid));
    const [, h8, w8] = a.dims;
    if (h8 * RATIO !== h || w8 * RATIO !== w || !a.peaks)
      throw new KensaError('E_RUNTIME', `the members' grids do not match (${h8}×${w8} and ${h}×${w})`);
    const [wa, wb] = weights(this.scales);
    const grid = new Float32Array(B * h * w);
    const map = new Float32Array(H * STRIDE * W * STRIDE);
    const pdInput = new Float32Array(B * h * w);
    const members = MEMBERS.map(() => ({ score: new Float32Array(B), low: new Float32Array(B) }));
    const combined = new Float32Array(B);
    for (let e = 0; e < B; e++) {
      const o = owned?.[e] ?? { y0: 0, y1: h, x0: 0, x1: w };
      // PaDiM's own image score: the maximum of its smoothed map, over the pixels this input owns
      this.step.apply(b.grid, map, e * H * W);
      const p = resampled ? { y0: 0, y1: H, x0: 0, x1: W } : o;
      let peak = -Infinity;
      for (let y = p.y0 * STRIDE; y < p.y1 * STRIDE; y++)
        for (let x = p.x0 * STRIDE; x < p.x1 * STRIDE; x++)
          if (map[y * W * STRIDE + x] > peak) peak = map[y * W * STRIDE + x];
      // and its patch scores on the input's grid
      const pd = pdInput.subarray(e * h * w, (e + 1) * h * w);
      if (resampled) upsampleBilinear(b.grid.subarray(e * H * W, (e + 1) * H * W), H, W, h, w, pd);
      else pd.set(b.grid.subarray(e * h * w, (e + 1) * h * w));
      let lowA = Infinity;
      let lowB = Infinity;
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const va = a.grid[(e * h8 + Math.floor(y / RATIO)) * w8 + Math.floor(x / RATIO)];
          const vb = pd[y * w + x];
          grid[(e * h + y) * w + x] = wa * va + wb * vb;
          if (y >= o.y0 && y < o.y1 && x >= o.x0 && x < o.x1) {
            if (va < lowA) lowA = va;
            if (vb < lowB) lowB = vb;
          }
        }
      members[0].score[e] = a.peaks.score[e];
      members[0].low[e] = lowA;
      members[1].score[e] = peak;
      members[1].low[e] = lowB;
      combined[e] = wa * a.peaks.score[e] + wb * peak;
    }
    return {
      grid,
      dims: [B, h, w],
      peaks: { raw: combined, score: combined, members },
      memberGrids: [a.grid, pdInput],
    };
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
    /** PaDiM's grid (stride 4): every input's features are resampled to it (onGrid). */
    private readonly grid: [number, number],
    private readonly scales: [number, number] = [1, 1],
  ) {}

  get timings(): Record<string, number> | undefined {
    return this.pc.timings;
  }

  async add(features: Features, images: readonly number[], owned: readonly CellRect[]): Promise<void> {
    await this.pc.add(features, images, coarse(owned));
    await this.pd.add(onGrid(features, this.grid), images, owned);
  }

  async without(fold: Fold, onProgress?: (done: number, total: number) => void): Promise<Scorer> {
    const a = await this.pc.without(fold, onProgress);
    try {
      if (this.loo === undefined) this.loo = (await this.pd.leaveOneOut?.(onProgress)) ?? null;
      this.usedLoo = this.loo !== null;
      const grid = this.grid;
      const b =
        this.loo ??
        (await this.pd.without(
          {
            images: fold.images,
            features: async function* () {
              for await (const batch of fold.features())
                yield { ...batch, features: onGrid(batch.features, grid) };
            },
          },
          onProgress,
        ));
      return new EnsembleScorer(a, b, this.grid, this.scales, this.loo ?? undefined);
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
  const inPc = prefixed('pc/', keep);
  const pcNodes = renameSpecs(pcGraph.nodes, pcGraph.initializers, inPc);
  // PaDiM on its own grid: each feature map resized to it (linear, half-pixel centres, as onGrid; the
  // same values where the input has that grid), its patch scores resized back to the input's grid
  const [H, W] = padim.inputGrid(state.padim)!;
  const pdGraph = padim.exportGraph(state.padim);
  const pdName = (n: string) => (n === '' ? n : FEATURES.has(n) ? `e/${n}_pd` : `pd/${n}`);
  const pdNodes = renameSpecs(pdGraph.nodes, pdGraph.initializers, pdName);

  const linear = { mode: 'linear', coordinate_transformation_mode: 'half_pixel' };
  ['layer1', 'layer2', 'layer3'].forEach((layer, k) => {
    nodes.push(
      { op: 'Shape', inputs: [layer], output: `e/${layer}_shape` },
      { op: 'Slice', inputs: [`e/${layer}_shape`, 'e/zero', 'e/two'], output: `e/${layer}_nc` },
      {
        op: 'Concat',
        inputs: [`e/${layer}_nc`, `e/${layer}_hw`],
        output: `e/${layer}_sizes`,
        attrs: { axis: 0 },
      },
      { op: 'Resize', inputs: [layer, '', '', `e/${layer}_sizes`], output: `e/${layer}_pd`, attrs: linear },
    );
    initializers.push(int64Tensor(`e/${layer}_hw`, [H >> k, W >> k]));
  });
  nodes.push(...pcNodes, ...pdNodes);
  initializers.push(...pcGraph.initializers, ...pdGraph.initializers);
  const pcGrid = inPc(pcGraph.grid);
  const pdOwn = pdName(pdGraph.grid);
  nodes.push(
    { op: 'Unsqueeze', inputs: [pdOwn, 'e/one'], output: 'e/pd_own4' },
    { op: 'Slice', inputs: ['e/layer1_shape', 'e/zero', 'e/one'], output: 'e/n' },
    { op: 'Slice', inputs: ['e/layer1_shape', 'e/two', 'e/four'], output: 'e/l1_hw' },
    { op: 'Concat', inputs: ['e/n', 'e/one', 'e/l1_hw'], output: 'e/back_sizes', attrs: { axis: 0 } },
    { op: 'Resize', inputs: ['e/pd_own4', '', '', 'e/back_sizes'], output: 'e/pd_back4', attrs: linear },
    { op: 'Squeeze', inputs: ['e/pd_back4', 'e/one'], output: 'e/pd_grid' },
  );
  const pdGrid = 'e/pd_grid';
  // PaDiM's smoothed map on its own grid (4H × 4W pixels), and its maximum over the owned pixels
  const step = mapStepNodes(PADIM_MAP, pdOwn, { hw: 'e/hw' });
  const inMap = prefixed('pdmap/', new Set([pdOwn, 'e/hw']));
  const pdMap = inMap(step.map);
  nodes.push(...renameSpecs(step.nodes, step.initializers, inMap));
  initializers.push(
    ...step.initializers,
    int64Tensor('e/hw', [H * STRIDE, W * STRIDE]),
    int64Tensor('e/zero', [0]),
  );
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
    { op: 'Mul', inputs: [inPc(pcGraph.score!), 'e/wa'], output: 'e/pc_s' },
    { op: 'Mul', inputs: ['e/pd_score', 'e/wb'], output: 'e/pd_s' },
    { op: 'Add', inputs: ['e/pc_s', 'e/pd_s'], output: 'e/score' },
  );
  initializers.push(
    int64Tensor('e/one', [1]),
    int64Tensor('e/two', [2]),
    int64Tensor('e/four', [4]),
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
  // the parts' constants that this graph's nodes do not read (the map step's for an input-sized map)
  const read = new Set(nodes.flatMap((n) => n.inputs));
  return {
    nodes,
    initializers: initializers.filter((t) => read.has(t.name)),
    grid: 'e/grid',
    score: 'e/score',
    peak: 'e/score',
  };
}

export const ensemble: Method<EnsembleState> = {
  name: 'ensemble',
  summary: 'PatchCore and PaDiM scored together, each score over its own calibration spread',
  learning: 'unsupervised',
  scoreRange: [0, Infinity],
  ownScore: true,
  // PaDiM's Gaussians beside PatchCore's bank: PatchCore alone needs less
  lighter: 'patchcore',
  stride: STRIDE,
  map: PADIM_MAP,
  // inputs of any size: PaDiM's features are resampled to its grid
  fixedGrid: false,
  inputGrid: () => undefined,

  check(settings) {
    const { pc, pd } = memberSettings(settings);
    const a = patchcore.check(pc);
    const b = padim.check(pd);
    return {
      fitBytes: a.fitBytes + b.fitBytes,
      scoreBytes: a.scoreBytes + b.scoreBytes,
      modelBytes: a.modelBytes + b.modelBytes,
      detail: tr(`PatchCore: ${a.detail}; PaDiM: ${b.detail}`, `PatchCore: ${a.detail}。PaDiM: ${b.detail}`),
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
    return new EnsembleFitter(patchcore.createFitter(pc), padim.createFitter(pd), pd.grid!);
  },

  async resume(state, settings, onProgress) {
    const { pc, pd } = memberSettings(settings);
    const a = await patchcore.resume!(state.patchcore, pc, onProgress);
    try {
      return new EnsembleFitter(
        a,
        await padim.resume!(state.padim, pd, onProgress),
        padim.inputGrid(state.padim)!,
        state.scales,
      );
    } catch (error) {
      await a.release();
      throw error;
    }
  },

  async openScorer(state) {
    const a = await patchcore.openScorer(state.patchcore);
    try {
      return new EnsembleScorer(
        a,
        await padim.openScorer(state.padim),
        padim.inputGrid(state.padim)!,
        state.scales,
      );
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
