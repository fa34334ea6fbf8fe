/**
 * The PaDiM model: per position of the stride-4 grid a mean and a precision matrix (inverse of the
 * covariance + ε·I), over a fixed subset of the backbone's channels.
 *
 * Fitting is streaming: embeddings of a few dozen images at a time are centred on a fixed shift and their
 * outer products added into one d×d accumulator per position, so memory does not grow with the number of
 * training images. Out-of-fold statistics come from the same accumulator: a fold's Xᵀ X is accumulated
 * on its own and subtracted from the total, so a fold costs one more pass over its images and one
 * inversion, never a second fit. The statistics are then used by the distance graph (graphs.ts): the
 * Mahalanobis distance of each test patch.
 */
import { KensaError } from '../../util/errors.js';
import type { Features, Fitter, Fold, MethodState, PatchScores, Scorer } from '../method.js';
import type { EmbeddingLayout } from './embedding.js';
import { DistanceGraph, EmbedGraph, LeaveOneOutGraph } from './graphs.js';
import { accumulateOuter, invertBatch, invertBatch64 } from './linalg.js';

/** Regularisation added to every covariance, as in the PaDiM paper and its public code. */
export const EPSILON = 0.01;
/** Grid stride in input pixels (the finest backbone map). */
export const PADIM_STRIDE = 4;
/**
 * Below this c·q, float32's q is enough: a relative error ε in q becomes ε/(2(1 − c·q)) in the distance
 * (ε·c·q/(1 − c·q) in 1 − c·q, and the square root halves both), at most 5ε here. A float32 dot product of
 * d = 176 terms is typically good to ~1e-6, so the distance stays within ~5e-6, inside the 1e-5 that
 * scores are held to. MTD (761 images of 176 channels): c·q stays below it for every patch, and the
 * calibration scores equal the float64 ones within 3.2e-7 (BENCHMARKS.md, Speed); a few images for many
 * channels do not (c·q near 1) and are scored in float64 (LeaveOneOutScorer).
 */
export const FLOAT32_CQ = 0.9;
/**
 * Whether a leave-one-out model of n images of d channels computes in float32 first: where the typical
 * patch's c·q (≈ d/n: q averages about d over the training images) is at most a third of FLOAT32_CQ, so
 * that only patches three times as far out need float64. Else (few images for the channels: nearly every
 * image would be scored twice) it computes in float64 alone, with float64's memory only.
 */
export function looInFloat32(n: number, d: number): boolean {
  return d / n <= FLOAT32_CQ / 3;
}
/** Batches of the leave-one-out scorer: float32 products [P, B, d] (three of them), or float64 ones. */
export const LOO_BATCH = 16;
export const LOO_BATCH_64 = 8;
/** Largest embedding chunk (bytes) held while fitting: more images per chunk, fewer accumulator passes. */
export const BUFFER_BYTES = 192 * 1024 * 1024;

export interface PadimState extends MethodState {
  method: 'padim';
  layout: EmbeddingLayout;
  /** [P, d] */
  mean: Float32Array;
  /** [P, d, d] */
  precision: Float32Array;
  /** Images (or tiles) the statistics were fitted on. */
  count: number;
  seed: number;
  epsilon: number;
}

export function imagesPerChunk(layout: EmbeddingLayout, max = 128): number {
  const perImage = layout.height * layout.width * layout.index.length * 4;
  return Math.max(4, Math.min(max, Math.floor(BUFFER_BYTES / perImage)));
}

/**
 * Streams embeddings into chunks of K images ([P, K, d]) and adds each full chunk's Xᵀ X into an
 * accumulator; also sums the embeddings. One per accumulator (the total, or a fold's).
 */
class Accumulator {
  readonly sum: Float64Array;
  readonly acc: Float32Array;
  count = 0;
  private buffer?: Float32Array;
  private filled = 0;

  /**
   * `acc`: a buffer of P·d·d values to reuse (zeroed here), e.g. the previous fold's; with `start`, the
   * sums it holds already (of `start` images, centred on the shift, with their sum 0) are kept.
   */
  constructor(
    private readonly P: number,
    private readonly d: number,
    private readonly K: number,
    acc?: Float32Array,
    start = 0,
  ) {
    this.sum = new Float64Array(P * d);
    this.acc = (start ? acc : acc?.fill(0)) ?? new Float32Array(P * d * d);
    this.count = start;
  }

  /** x: [P, B, d] centred embeddings of B images; sum: their sum over B. */
  async add(x: Float32Array, sum: Float32Array, B: number): Promise<void> {
    const { P, d, K } = this;
    const buffer = (this.buffer ??= new Float32Array(P * K * d));
    for (let i = 0; i < sum.length; i++) this.sum[i] += sum[i];
    for (let b = 0; b < B;) {
      const n = Math.min(B - b, K - this.filled);
      for (let p = 0; p < P; p++)
        buffer.set(x.subarray((p * B + b) * d, (p * B + b + n) * d), (p * K + this.filled) * d);
      this.filled += n;
      b += n;
      if (this.filled === K) await this.flush();
    }
  }

  /**
   * Accumulates what is buffered (the unused slots of a partly filled chunk are zeroed so they add
   * nothing). `last`: no more images will come, so the chunk buffer is let go.
   */
  async flush(last = false): Promise<void> {
    const { P, d, K, buffer } = this;
    if (buffer && this.filled > 0) {
      for (let p = 0; p < P; p++) buffer.fill(0, (p * K + this.filled) * d, (p + 1) * K * d);
      await accumulateOuter(buffer, this.acc, P, K, d);
      this.count += this.filled;
      this.filled = 0;
    }
    if (last) this.buffer = undefined;
  }
}

/**
 * Turns centred sums into the statistics, in place: `acc` (Σ (x−s)(x−s)ᵀ over n images) becomes the
 * precision (covariance with the unbiased n−1 normaliser, + ε·I, inverted in float64); returns the mean.
 */
async function statistics(
  acc: Float32Array,
  sum: Float64Array,
  n: number,
  shift: Float32Array,
  P: number,
  d: number,
  onProgress?: (done: number, total: number) => void,
): Promise<{ mean: Float32Array; precision: Float32Array }> {
  if (n < 2)
    throw new KensaError('E_ARGUMENT', `a covariance needs at least 2 training images; ${n} were given`);
  const mean = new Float32Array(P * d);
  const m = new Float64Array(d);
  for (let p = 0; p < P; p++) {
    for (let j = 0; j < d; j++) {
      m[j] = sum[p * d + j] / n;
      mean[p * d + j] = shift[p * d + j] + m[j];
    }
    const o = p * d * d;
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) acc[o + i * d + j] = (acc[o + i * d + j] - n * m[i] * m[j]) / (n - 1);
      acc[o + i * d + i] += EPSILON;
    }
  }
  return { mean, precision: await invertBatch(acc, P, d, onProgress) };
}

/** A scorer over PaDiM statistics: the Mahalanobis distance of every patch. */
export class PadimScorer implements Scorer {
  readonly stride = PADIM_STRIDE;

  private constructor(private readonly graph: DistanceGraph) {}

  static async open(
    layout: EmbeddingLayout,
    mean: Float32Array,
    precision: Float32Array,
  ): Promise<PadimScorer> {
    return new PadimScorer(await DistanceGraph.create(layout, mean, precision));
  }

  score(features: Features) {
    return this.graph.run(features);
  }

  release(): Promise<void> {
    return this.graph.release();
  }
}

/**
 * Scores each training image as the model fitted on all the other training images would (leave-one-out),
 * in closed form. With the scatter S = Σ (x − μ)(x − μ)ᵀ of all n images and r = x − μ for one of them, the
 * model without it has the mean μ₋ = μ − r/(n − 1) and the covariance C₋ = (S − n/(n−1)·r rᵀ)/(n − 2) + εI
 * = A − c·r rᵀ with A = S/(n − 2) + εI and c = n/((n − 1)(n − 2)). Its distance of x is
 * (x − μ₋)ᵀ C₋⁻¹ (x − μ₋) = k²·q/(1 − c·q), k = n/(n − 1), q = rᵀ A⁻¹ r (Sherman–Morrison): the usual
 * Mahalanobis graph with (μ, A⁻¹), and a correction per patch. One inversion and one pass over the images,
 * where k folds take k inversions and two passes; and every image is scored by a model of n − 1 images,
 * so the scores are those of new good images (k-fold's models of (k − 1)/k of the images score higher).
 * q is computed in float32 where c·q < FLOAT32_CQ for every patch of the image, else in float64.
 */
export class LeaveOneOutScorer implements Scorer {
  readonly stride = PADIM_STRIDE;
  /** Batches as large as the products allow in the memory estimate (method.ts). */
  readonly batch: number;
  /** Images scored again in float64 so far (some patch's c·q at or above FLOAT32_CQ). */
  rescored = 0;
  private exact?: Promise<LeaveOneOutGraph>;

  /**
   * With `float64()`, `graph` computes in float32 and `float64()` makes the float64 graph the first time
   * an image needs it (its statistics take twice the memory and a second inversion, which most training
   * sets never need). Without it, `graph` computes in float64 (looInFloat32 false).
   */
  constructor(
    private readonly graph: LeaveOneOutGraph,
    private readonly float64?: () => Promise<LeaveOneOutGraph>,
  ) {
    this.batch = float64 ? LOO_BATCH : LOO_BATCH_64;
  }

  /** Whether the first computation is in float32 (looInFloat32). */
  get float32(): boolean {
    return this.float64 !== undefined;
  }

  async score(features: Features): Promise<PatchScores> {
    const { scores, cq } = await this.graph.run(features);
    if (!this.float64) return scores;
    // an image is scored in float64 where float32 would lose 1 − c·q: on its own content only, so its
    // score does not depend on the other images of the batch
    const again = Array.from(cq.keys()).filter((b) => !(cq[b] < FLOAT32_CQ));
    if (again.length === 0) return scores;
    this.exact ??= this.float64();
    const exact = await (await this.exact).run(pickBatch(features, again));
    const cells = scores.dims[1] * scores.dims[2];
    again.forEach((b, i) =>
      scores.grid.set(exact.scores.grid.subarray(i * cells, (i + 1) * cells), b * cells),
    );
    this.rescored += again.length;
    return scores;
  }

  async release(): Promise<void> {
    await this.graph.release();
    if (this.exact) await (await this.exact).release();
  }
}

/** The batch elements `which` of each feature map, in that order. */
function pickBatch(features: Features, which: readonly number[]): Features {
  return features.map((m) => {
    const [, c, h, w] = m.dims;
    const size = c * h * w;
    const data = new Float32Array(which.length * size);
    which.forEach((b, i) => data.set(m.data.subarray(b * size, (b + 1) * size), i * size));
    return { data, dims: [which.length, c, h, w] };
  }) as unknown as Features;
}

/**
 * Streaming estimator of the per-position mean and covariance. Feed it backbone batches with `add`,
 * then `finish()` for the Gaussian statistics.
 */
export class GaussianFitter implements Fitter<PadimState> {
  private readonly P: number;
  private readonly d: number;
  private readonly K: number;
  private total?: Accumulator;
  private foldBuffer?: Float32Array;
  private shift?: Float32Array;
  private embed?: EmbedGraph;
  /** Training images added; `tiled` once one of them came as several samples (its tiles). */
  private readonly seen = new Set<number>();
  private tiled = false;

  constructor(
    readonly layout: EmbeddingLayout,
    private readonly seed = 0,
  ) {
    this.P = layout.height * layout.width;
    this.d = layout.index.length;
    this.K = imagesPerChunk(layout);
  }

  /**
   * A fitter that starts from fitted statistics (kensa update): the sums are additive, so the images added
   * next are fitted as if they had come with the first ones. The scatter of the first images comes back
   * from the stored precision (its inverse, less ε·I, times n − 1) and their mean is the shift; the result
   * equals a fit on all the images up to float32 rounding of the stored statistics. Out-of-fold and
   * leave-one-out scorers then score new images only (each against every other image, old and new).
   */
  static async resume(state: PadimState, onProgress?: (done: number, total: number) => void) {
    const fitter = new GaussianFitter(state.layout, state.seed);
    const { P, d } = fitter;
    const n = state.count;
    if (!(n >= 2))
      throw new KensaError(
        'E_ARGUMENT',
        'the model does not record how many images its statistics were fitted on (an older kensa wrote it); train it again to add images',
      );
    const scatter = await invertBatch(state.precision.slice(), P, d, onProgress);
    for (let p = 0; p < P; p++) {
      const o = p * d * d;
      for (let i = 0; i < d; i++) scatter[o + i * d + i] -= state.epsilon;
      for (let k = o; k < o + d * d; k++) scatter[k] *= n - 1;
    }
    fitter.shift = state.mean.slice();
    fitter.total = new Accumulator(P, d, fitter.K, scatter, n);
    return fitter;
  }

  /** Centred embeddings of a batch (the shift is fixed by the first batch). */
  private async embeddings(maps: Features): Promise<{ x: Float32Array; sum: Float32Array }> {
    this.embed ??= await EmbedGraph.create(this.layout);
    if (!this.shift) {
      // Centre on a fixed shift (the first batch's mean) so that float32 sums keep their precision.
      const B = maps[0].dims[0];
      const { sum } = await this.embed.run(maps, new Float32Array(this.P * this.d));
      this.shift = sum.map((v) => v / B);
    }
    return this.embed.run(maps, this.shift);
  }

  /** Adds every image of a backbone batch (`images`: each element's training image, to tell tiles apart). */
  async add(maps: Features, images?: readonly number[]): Promise<void> {
    for (const i of images ?? []) {
      if (this.seen.has(i)) this.tiled = true;
      this.seen.add(i);
    }
    const { x, sum } = await this.embeddings(maps);
    this.total ??= new Accumulator(this.P, this.d, this.K);
    await this.total.add(x, sum, maps[0].dims[0]);
  }

  private async fitted(): Promise<Accumulator> {
    if (!this.total || !this.shift)
      throw new KensaError('E_ARGUMENT', 'a covariance needs at least 2 training images; 0 were given');
    await this.total.flush(true);
    return this.total;
  }

  async without(fold: Fold, onProgress?: (done: number, total: number) => void): Promise<Scorer> {
    const total = await this.fitted();
    // one buffer for every fold (the previous fold's scorer is released before the next fold starts),
    // so memory stays two accumulators however many folds
    const part = new Accumulator(this.P, this.d, this.K, this.foldBuffer);
    this.foldBuffer = part.acc;
    for await (const batch of fold.features()) {
      const { x, sum } = await this.embeddings(batch.features);
      await part.add(x, sum, batch.features[0].dims[0]);
    }
    await part.flush(true);
    const acc = part.acc;
    const sum = new Float64Array(total.sum.length);
    for (let i = 0; i < acc.length; i++) acc[i] = total.acc[i] - acc[i];
    for (let i = 0; i < sum.length; i++) sum[i] = total.sum[i] - part.sum[i];
    const { mean, precision } = await statistics(
      acc,
      sum,
      total.count - part.count,
      this.shift!,
      this.P,
      this.d,
      onProgress,
    );
    return PadimScorer.open(this.layout, mean, precision);
  }

  /**
   * A scorer of the training images as if each had not been seen (see LeaveOneOutScorer), when every
   * sample is one image (not tiles of it: leaving an image out would then take all its tiles). Called
   * after every batch has been added and before `finish`.
   */
  async leaveOneOut(onProgress?: (done: number, total: number) => void): Promise<Scorer | undefined> {
    const total = await this.fitted();
    if (this.tiled || total.count < 3) return undefined;
    const { P, d } = this;
    const n = total.count;
    const mean = new Float64Array(P * d);
    for (let i = 0; i < P * d; i++) mean[i] = this.shift![i] + total.sum[i] / n;
    // A = S/(n − 2) + εI, made from the scatter and inverted (in float64 either way); kept in float32,
    // and in float64 too once an image needs it (LeaveOneOutScorer), or in float64 alone (looInFloat32)
    const matrix = (start: number, count: number, into: Float32Array) => {
      for (let p = 0; p < count; p++) {
        const o = (start + p) * d * d;
        const m = (start + p) * d;
        for (let i = 0; i < d; i++) {
          const mi = total.sum[m + i] / n;
          for (let j = 0; j < d; j++)
            into[p * d * d + i * d + j] =
              (total.acc[o + i * d + j] - n * mi * (total.sum[m + j] / n)) / (n - 2);
          into[p * d * d + i * d + i] += EPSILON;
        }
      }
    };
    const float64 = async (progress?: typeof onProgress) =>
      LeaveOneOutGraph.create(this.layout, mean, await invertBatch64(matrix, P, d, progress), n);
    if (!looInFloat32(n, d)) return new LeaveOneOutScorer(await float64(onProgress));
    const a = new Float32Array(P * d * d);
    matrix(0, P, a);
    const precision = await invertBatch(a, P, d, onProgress);
    return new LeaveOneOutScorer(
      await LeaveOneOutGraph.create(this.layout, Float32Array.from(mean), precision, n),
      float64,
    );
  }

  /** The statistics; `onProgress` follows the inversion (positions done of all). */
  async finish(onProgress?: (done: number, total: number) => void): Promise<PadimState> {
    const total = await this.fitted();
    const { mean, precision } = await statistics(
      total.acc,
      total.sum,
      total.count,
      this.shift!,
      this.P,
      this.d,
      onProgress,
    );
    const count = total.count;
    this.total = undefined;
    this.foldBuffer = undefined;
    await this.release();
    return {
      method: 'padim',
      layout: this.layout,
      mean,
      precision,
      count,
      seed: this.seed,
      epsilon: EPSILON,
    };
  }

  async release(): Promise<void> {
    await this.embed?.release();
    this.embed = undefined;
  }
}
