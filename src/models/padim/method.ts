/**
 * PaDiM as a method (models/method.ts): one Gaussian per position of a fixed grid, Mahalanobis distance.
 *
 * Stored tensors: padim.mean [P, d] f32; padim.precision_packed [P, d(d+1)/2] f32, the upper triangle of
 * each symmetric precision matrix, row by row (format version 2; version 1 files hold the full
 * padim.precision [P, d, d] and still load); padim.channel_index [d] i32.
 */
import { distanceExportGraph } from './graphs.js';
import { KensaError, invalidParameter } from '../../util/errors.js';
import type { Tensor } from '../../util/tensor.js';
import { featureProblem, type Estimate, type FitSettings, type Method } from '../method.js';
import { chooseChannels } from './embedding.js';
import {
  BUFFER_BYTES,
  EPSILON,
  LOO_BATCH,
  LOO_BATCH_64,
  looInFloat32,
  GaussianFitter,
  PADIM_STRIDE,
  PadimScorer,
  type PadimState,
} from './model.js';
import { tr } from '../../i18n.js';

/** The largest statistics a model may declare (elements of the full precision tensor). */
const MAX_PRECISION_VALUES = 2 ** 31;

/** The upper triangles of P symmetric d×d matrices, row by row: P·d(d+1)/2 values. */
export function packUpper(full: Float32Array, P: number, d: number): Float32Array {
  const T = (d * (d + 1)) / 2;
  const out = new Float32Array(P * T);
  let k = 0;
  for (let p = 0; p < P; p++) {
    const o = p * d * d;
    for (let i = 0; i < d; i++) {
      out.set(full.subarray(o + i * d + i, o + i * d + d), k);
      k += d - i;
    }
  }
  return out;
}

/** The symmetric matrices back from their packed upper triangles. */
export function unpackUpper(packed: Float32Array, P: number, d: number): Float32Array {
  const out = new Float32Array(P * d * d);
  let k = 0;
  for (let p = 0; p < P; p++) {
    const o = p * d * d;
    for (let i = 0; i < d; i++) {
      for (let j = i; j < d; j++) {
        const v = packed[k++];
        out[o + i * d + j] = v;
        out[o + j * d + i] = v;
      }
    }
  }
  return out;
}

/** Positions whose whole precision matrix is factorised when a model loads (the others: cheap checks). */
const CHOLESKY_SAMPLE = 64;

/**
 * What makes stored precision matrices unusable, or undefined. A precision is the inverse of a covariance
 * plus ε·I, so it is symmetric positive definite with eigenvalues in (0, 1/ε]: every diagonal element is
 * in (0, 1/ε], every off-diagonal one at most √(pᵢᵢ·pⱼⱼ) in magnitude (checked at every position), and
 * a Cholesky factorisation succeeds (checked at a sample of positions spread over the grid). All-zero or
 * indefinite matrices would give distances of 0 (every image OK) or NaN.
 */
export function precisionProblem(
  precision: Float32Array,
  P: number,
  d: number,
  epsilon: number,
): string | undefined {
  const top = (1 / epsilon) * (1 + 1e-3);
  for (let p = 0; p < P; p++) {
    const o = p * d * d;
    for (let i = 0; i < d; i++) {
      const pii = precision[o + i * d + i];
      if (!Number.isFinite(pii)) return 'it holds non-finite numbers (NaN or infinity)';
      if (!(pii > 0 && pii <= top))
        return `its precision matrix at position ${p} has ${pii.toPrecision(3)} on its diagonal, outside (0, ${(1 / epsilon).toPrecision(3)}] (the inverse of a covariance + ${epsilon}·I): the file is damaged`;
    }
    for (let i = 0; i < d; i++) {
      for (let j = i + 1; j < d; j++) {
        const v = precision[o + i * d + j];
        const bound = Math.sqrt(precision[o + i * d + i] * precision[o + j * d + j]) * (1 + 1e-3);
        if (!(Math.abs(v) <= bound) || !(Math.abs(v - precision[o + j * d + i]) <= 1e-3 * bound))
          return `its precision matrix at position ${p} is not symmetric positive definite (element ${i},${j} is ${v.toPrecision(3)}): the file is damaged`;
      }
    }
  }
  const L = new Float64Array(d * d);
  const step = Math.max(1, Math.floor(P / CHOLESKY_SAMPLE));
  for (let p = 0; p < P; p += step) {
    const o = p * d * d;
    for (let i = 0; i < d; i++) {
      for (let j = 0; j <= i; j++) {
        let s = precision[o + i * d + j];
        for (let k = 0; k < j; k++) s -= L[i * d + k] * L[j * d + k];
        if (i === j) {
          if (!(s > 0))
            return `its precision matrix at position ${p} is not positive definite: the file is damaged`;
          L[i * d + i] = Math.sqrt(s);
        } else L[i * d + j] = s / L[j * d + j];
      }
    }
  }
  return undefined;
}

function dFor(settings: FitSettings): number {
  const [c1, c2, c3] = settings.channels;
  const total = c1 + c2 + c3;
  // EfficientNet-Lite keeps all channels (the backbone's default d is all of them); others take a subset
  const d = settings.d ?? Math.min(total, settings.defaultD ?? total);
  if (!Number.isInteger(d) || d < 1 || d > total)
    throw invalidParameter('d', `an integer between 1 and ${total}`, d);
  return d;
}

function estimate(settings: FitSettings, grid: [number, number], d: number, batch: number): Estimate {
  const P = grid[0] * grid[1];
  const matrices = P * d * d * 4;
  const spare = Math.min(1024, P) * d * d * 4;
  const inverse = Math.min(256, P) * d * d * 8 * 3;
  const model = P * ((d * (d + 1)) / 2 + d) * 4;
  // calibration: leave-one-out keeps the float32 inverses beside the accumulator, and float64 ones too
  // where an image needs them (LeaveOneOutScorer), with products for a batch of each; or the float64
  // ones alone (few images for the channels); k folds keep a fold's accumulator beside it
  const leaveOneOut = looInFloat32(settings.images, d)
    ? 3 * matrices + 3 * P * LOO_BATCH * d * (4 + 8)
    : 2 * matrices + 3 * P * LOO_BATCH_64 * d * 8;
  return {
    // the total accumulator, the calibration's matrices, one chunk of embeddings, onnxruntime's chunk buffers
    fitBytes: matrices + Math.max(matrices, leaveOneOut) + BUFFER_BYTES + spare + inverse,
    // the full precision matrices and the per-batch products [P, B, d]
    scoreBytes: matrices + 3 * P * batch * d * 4,
    modelBytes: model,
    detail: tr(
      `${P} positions × ${d}×${d} covariance matrices (${(matrices / 2 ** 20).toFixed(0)} MiB each copy)`,
      `${P} 位置 × ${d}×${d} の共分散行列（1 組 ${(matrices / 2 ** 20).toFixed(0)} MiB）`,
    ),
  };
}

export const padim: Method<PadimState> = {
  name: 'padim',
  summary: 'one Gaussian per patch position, Mahalanobis distance (Defard et al. 2020)',
  learning: 'unsupervised',
  scoreRange: [0, Infinity],
  ownScore: false,
  stride: PADIM_STRIDE,
  map: { sigma: 4, padding: 'reflect' },
  fixedGrid: true,
  inputGrid: (state) => [state.layout.height, state.layout.width],

  check(settings) {
    for (const [name, value] of [
      ['--coreset', settings.coreset],
      ['--neighbors', settings.neighbors],
    ] as const)
      if (value !== undefined)
        throw new KensaError(
          'E_ARGUMENT',
          `${name} applies to --method patchcore only; leave it out for padim`,
        );
    if (!settings.grid) {
      throw new KensaError(
        'E_ARGUMENT',
        'PaDiM fits one Gaussian per patch position, so every network input must have the same size; ' +
          'with the aspect ratio kept, images of different sizes give different grids. ' +
          'Use --tile T (one Gaussian per position within a tile), --square for a square resize, or --method patchcore',
      );
    }
    return estimate(settings, settings.grid, dFor(settings), 32);
  },

  scoreBytes(state, batch) {
    const P = state.layout.height * state.layout.width;
    const d = state.layout.index.length;
    return P * d * d * 4 + 3 * P * batch * d * 4;
  },

  createFitter(settings) {
    const d = dFor(settings);
    const total = settings.channels[0] + settings.channels[1] + settings.channels[2];
    const [height, width] = settings.grid!;
    if (settings.images * settings.inputsPerImage < d) {
      const n = settings.images * settings.inputsPerImage;
      settings.onWarning?.(
        tr(
          `${n} training images for ${d} channels: the covariances rest largely on the ε·I regulariser; ` +
            `more good images (≥ ${d}) give a more stable model`,
          `チャンネル ${d} 個に対して学習画像が ${n} 枚です。共分散の大部分が正則化項 ε·I によります。` +
            `良品画像を増やす（${d} 枚以上）と安定したモデルになります`,
        ),
      );
    }
    return new GaussianFitter(
      { channels: settings.channels, index: chooseChannels(total, d, settings.seed), height, width },
      settings.seed,
    );
  },

  resume(state, _settings, onProgress) {
    return GaussianFitter.resume(state, onProgress);
  },

  openScorer(state) {
    return PadimScorer.open(state.layout, state.mean, state.precision);
  },

  exportGraph(state) {
    return distanceExportGraph(state.layout, state.mean, state.precision);
  },

  describe(state) {
    const { layout } = state;
    return {
      d: layout.index.length,
      seed: state.seed,
      epsilon: state.epsilon,
      grid: [layout.height, layout.width],
      count: state.count,
    };
  },

  serialize(state) {
    const { layout } = state;
    const P = layout.height * layout.width;
    const d = layout.index.length;
    const T = (d * (d + 1)) / 2;
    const tensors: [string, Tensor][] = [
      ['padim.mean', { dtype: 'float32', shape: [P, d], data: state.mean }],
      ['padim.precision_packed', { dtype: 'float32', shape: [P, T], data: packUpper(state.precision, P, d) }],
      ['padim.channel_index', { dtype: 'int32', shape: [d], data: layout.index }],
    ];
    return { tensors, meta: padim.describe(state) };
  },

  deserialize(tensors, meta, { channels, formatVersion }) {
    const m = meta as { d?: unknown; grid?: unknown; seed?: unknown; epsilon?: unknown; count?: unknown };
    const isInt = (v: unknown, min: number) => Number.isSafeInteger(v) && (v as number) >= min;
    if (typeof m !== 'object' || m === null || !isInt(m.d, 1)) return 'lacks the PaDiM d';
    if (!Array.isArray(m.grid) || m.grid.length !== 2 || !m.grid.every((g) => isInt(g, 1)))
      return 'lacks the PaDiM grid';
    const d = m.d as number;
    const [h, w] = m.grid as [number, number];
    const P = h * w;
    if (P * d * d > MAX_PRECISION_VALUES) return 'declares statistics too large to hold';
    const get = (name: string, shape: number[], dtype: string): Tensor['data'] | string => {
      const t = tensors.get(name);
      if (!t) return `tensor ${name} is missing`;
      if (t.dtype !== dtype || t.shape.join() !== shape.join())
        return `tensor ${name} is ${t.dtype} [${t.shape.join(', ')}], expected ${dtype} [${shape.join(', ')}]`;
      return t.data;
    };
    const mean = get('padim.mean', [P, d], 'float32');
    if (typeof mean === 'string') return mean;
    const stored =
      formatVersion === 1
        ? get('padim.precision', [P, d, d], 'float32')
        : get('padim.precision_packed', [P, (d * (d + 1)) / 2], 'float32');
    if (typeof stored === 'string') return stored;
    const index = get('padim.channel_index', [d], 'int32');
    if (typeof index === 'string') return index;
    const total = channels[0] + channels[1] + channels[2];
    const idx = index as Int32Array;
    if (idx.some((c, i) => c < 0 || c >= total || (i > 0 && c <= idx[i - 1])))
      return 'its channel indices are out of range';
    const meanProblem = featureProblem('mean', mean as Float32Array);
    if (meanProblem) return meanProblem;
    const precision =
      formatVersion === 1 ? (stored as Float32Array) : unpackUpper(stored as Float32Array, P, d);
    const epsilon = typeof m.epsilon === 'number' && m.epsilon > 0 ? m.epsilon : EPSILON;
    const problem = precisionProblem(precision, P, d, epsilon);
    if (problem) return problem;
    return {
      method: 'padim',
      layout: { channels, index: idx, height: h, width: w },
      mean: mean as Float32Array,
      precision,
      count: isInt(m.count, 0) ? (m.count as number) : 0,
      seed: isInt(m.seed, 0) ? (m.seed as number) : 0,
      epsilon,
    };
  },
};
