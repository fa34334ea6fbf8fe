/**
 * PatchCore as a method (models/method.ts): a coreset memory bank of good patches, nearest-neighbour
 * distance. Stored tensor: patchcore.memory_bank [M, C] f32.
 */
import { patchcoreExportGraph } from './graphs.js';
import { checkOption } from '../../options.js';
import { KensaError } from '../../util/errors.js';
import { featureProblem, type Estimate, type FitSettings, type Method } from '../method.js';
import { PROJECTION_DIM } from './coreset.js';
import { BLOCK_VALUES } from './graphs.js';
import {
  DEFAULT_CORESET,
  DEFAULT_NEIGHBORS,
  PATCHCORE_STRIDE,
  PatchcoreFitter,
  PatchcoreScorer,
  type PatchcoreState,
} from './model.js';
import { tr } from '../../i18n.js';

/** The most patches a coreset is taken from (the bound that keeps fitting's memory and time in reach). */
export const MAX_PATCHES = 4_000_000;

/**
 * The most bank rows per training image when --coreset is not given. A 224-pixel image gives ~800
 * patches and keeps its DEFAULT_CORESET share (~80); a camera image in tiles gives tens of thousands of
 * patches of one surface, which repeat each other: past this bound they add search time (every test
 * patch is compared with the bank), not coverage (BENCHMARKS.md, high resolution).
 */
export const BANK_ROWS_PER_IMAGE = 128;

/** The coreset share: --coreset, else DEFAULT_CORESET bounded by BANK_ROWS_PER_IMAGE rows per image. */
export function coresetFor(settings: Pick<FitSettings, 'coreset' | 'cellsPerImage'>): number {
  if (settings.coreset !== undefined) {
    checkOption('coreset', settings.coreset);
    return settings.coreset;
  }
  return Math.min(DEFAULT_CORESET, BANK_ROWS_PER_IMAGE / Math.max(1, settings.cellsPerImage));
}

function estimate(settings: FitSettings, coreset: number): Estimate {
  const C = settings.channels[1] + settings.channels[2];
  const N = settings.images * settings.cellsPerImage;
  const M = Math.max(1, Math.floor(N * coreset));
  const bank = M * C * 4;
  return {
    // every patch embedding, its projection and its image; the greedy search's bounds and heap; the bank
    fitBytes: N * (C + PROJECTION_DIM + 1) * 4 + N * 16 + M * PROJECTION_DIM * 4 + 2 * bank,
    // the bank, the bank prepared for the distance product, one block of distances, the support graph's copy
    scoreBytes: 4 * bank + BLOCK_VALUES * 4 * 3,
    modelBytes: bank,
    detail: tr(
      `${N.toLocaleString('en')} training patches of ${C} values, a bank of ${M.toLocaleString('en')}`,
      `学習パッチ ${N.toLocaleString('en')} 個（各 ${C} 値）、メモリバンク ${M.toLocaleString('en')} 個`,
    ),
  };
}

export const patchcore: Method<PatchcoreState> = {
  name: 'patchcore',
  summary: 'greedy coreset memory bank, nearest-neighbour distance (Roth et al. 2022)',
  learning: 'unsupervised',
  scoreRange: [0, Infinity],
  ownScore: true,
  stride: PATCHCORE_STRIDE,
  map: { sigma: 4, padding: 'mirror' },
  fixedGrid: false,
  inputGrid: () => undefined,

  check(settings) {
    if (settings.d !== undefined)
      throw new KensaError('E_ARGUMENT', '--d applies to --method padim only; leave it out for patchcore');
    const coreset = coresetFor(settings);
    const N = settings.images * settings.cellsPerImage;
    if (N > MAX_PATCHES) {
      throw new KensaError(
        'E_ARGUMENT',
        `PatchCore would take its coreset from ${N.toLocaleString('en')} training patches; at most ${MAX_PATCHES.toLocaleString('en')} fit in memory and time. ` +
          `Train on fewer images (about ${Math.floor(MAX_PATCHES / settings.cellsPerImage)}), or lower the resolution (--size or --scale)`,
      );
    }
    return estimate(settings, coreset);
  },

  scoreBytes(state, batch, cells) {
    // the bank, its rotated and transposed copies in the search graphs, one block of distances,
    // and the embeddings of a batch
    return 5 * state.bank.length * 4 + (1 << 24) * 4 * 2 + batch * cells * state.dim * 4 * 2;
  },

  createFitter(settings) {
    return new PatchcoreFitter(
      settings.channels,
      coresetFor(settings),
      settings.neighbors ?? DEFAULT_NEIGHBORS,
      settings.seed,
      settings.images * settings.cellsPerImage,
    );
  },

  resume(state, settings) {
    return Promise.resolve(
      new PatchcoreFitter(
        state.channels,
        state.coreset,
        state.neighbors,
        state.seed,
        settings.images * settings.cellsPerImage,
        { bank: state.bank, patches: state.patches },
      ),
    );
  },

  openScorer(state) {
    return PatchcoreScorer.open(state.bank, state.dim, state.neighbors, state.channels);
  },

  exportGraph(state, owned) {
    return { ...patchcoreExportGraph(state.bank, state.dim, state.neighbors, owned), peak: 's_star' };
  },

  describe(state) {
    return {
      coreset: state.coreset,
      neighbors: state.neighbors,
      seed: state.seed,
      patches: state.patches,
      projection_dim: PROJECTION_DIM,
      bank_size: state.bank.length / state.dim,
      embedding_dim: state.dim,
    };
  },

  serialize(state) {
    const M = state.bank.length / state.dim;
    return {
      tensors: [['patchcore.memory_bank', { dtype: 'float32', shape: [M, state.dim], data: state.bank }]],
      meta: patchcore.describe(state),
    };
  },

  deserialize(tensors, meta, { channels }) {
    const m = meta as { coreset?: unknown; neighbors?: unknown; seed?: unknown; patches?: unknown };
    if (typeof m !== 'object' || m === null) return 'lacks the PatchCore settings';
    const isInt = (v: unknown, min: number) => Number.isSafeInteger(v) && (v as number) >= min;
    if (!isInt(m.neighbors, 1)) return 'lacks the PatchCore neighbours';
    const C = channels[1] + channels[2];
    const t = tensors.get('patchcore.memory_bank');
    if (!t) return 'tensor patchcore.memory_bank is missing';
    if (t.dtype !== 'float32' || t.shape.length !== 2 || t.shape[1] !== C || t.shape[0] < 1)
      return `tensor patchcore.memory_bank is ${t.dtype} [${t.shape.join(', ')}], expected float32 [M, ${C}]`;
    const bank = t.data as Float32Array;
    const problem = featureProblem('memory bank', bank);
    if (problem) return problem;
    return {
      method: 'patchcore',
      channels,
      bank,
      dim: C,
      neighbors: m.neighbors as number,
      coreset: typeof m.coreset === 'number' ? m.coreset : DEFAULT_CORESET,
      seed: isInt(m.seed, 0) ? (m.seed as number) : 0,
      patches: isInt(m.patches, 0) ? (m.patches as number) : 0,
    };
  },
};
