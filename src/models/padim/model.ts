/**
 * The PaDiM model: per position of the stride-4 grid a mean and a precision matrix (inverse of the
 * covariance + ε·I), over a fixed subset of the backbone's channels.
 *
 * Fitting is streaming: embeddings of a few dozen images at a time are centred on a fixed shift and their
 * outer products added into one d×d accumulator per position, so memory does not grow with the number of
 * training images. The statistics are then used by the score graph (graphs.ts): the Mahalanobis distance
 * of each test patch.
 */
import type { FeatureMap } from '../../backbone/backbone.js';
import { KensaError } from '../../util/errors.js';
import type { EmbeddingLayout } from './embedding.js';
import { EmbedGraph } from './graphs.js';
import { accumulateOuter, invertBatch } from './linalg.js';

/** Regularisation added to every covariance, as in the PaDiM paper and its public code. */
export const EPSILON = 0.01;
/** Largest embedding chunk (bytes) held while fitting: more images per chunk, fewer accumulator passes. */
const BUFFER_BYTES = 192 * 1024 * 1024;

export interface GaussianStats {
  layout: EmbeddingLayout;
  /** [P, d] */
  mean: Float32Array;
  /** [P, d, d] */
  precision: Float32Array;
  /** Images the statistics were fitted on. */
  count: number;
}

export function imagesPerChunk(layout: EmbeddingLayout, max = 128): number {
  const perImage = layout.height * layout.width * layout.index.length * 4;
  return Math.max(4, Math.min(max, Math.floor(BUFFER_BYTES / perImage)));
}

/**
 * Streaming estimator of the per-position mean and covariance. Feed it backbone batches with `add`,
 * then `finish()` for the Gaussian statistics (covariance with the unbiased n−1 normaliser, + ε·I).
 */
export class GaussianFitter {
  private readonly P: number;
  private readonly d: number;
  private readonly K: number;
  private readonly buffer: Float32Array;
  private filled = 0;
  private count = 0;
  private shift?: Float32Array;
  private readonly sum: Float64Array;
  private acc: Float32Array;
  private spare: Float32Array;
  private embed?: EmbedGraph;

  constructor(readonly layout: EmbeddingLayout) {
    this.P = layout.height * layout.width;
    this.d = layout.index.length;
    this.K = imagesPerChunk(layout);
    this.buffer = new Float32Array(this.P * this.K * this.d);
    this.sum = new Float64Array(this.P * this.d);
    this.acc = new Float32Array(this.P * this.d * this.d);
    this.spare = new Float32Array(this.P * this.d * this.d);
  }

  /** Adds every image of a backbone batch. */
  async add(maps: readonly [FeatureMap, FeatureMap, FeatureMap]): Promise<void> {
    const { P, d, K } = this;
    this.embed ??= await EmbedGraph.create(this.layout);
    const B = maps[0].dims[0];
    if (!this.shift) {
      // Centre on a fixed shift (the first batch's mean) so that float32 sums keep their precision.
      const { sum } = await this.embed.run(maps, new Float32Array(P * d));
      this.shift = sum.map((v) => v / B);
    }
    const { x, sum } = await this.embed.run(maps, this.shift);
    for (let i = 0; i < sum.length; i++) this.sum[i] += sum[i];
    // x is [P, B, d]; copy image rows into free slots of the [P, K, d] chunk, flushing when full
    for (let b = 0; b < B;) {
      const n = Math.min(B - b, K - this.filled);
      for (let p = 0; p < P; p++)
        this.buffer.set(x.subarray((p * B + b) * d, (p * B + b + n) * d), (p * K + this.filled) * d);
      this.filled += n;
      b += n;
      if (this.filled === K) await this.flush();
    }
  }

  private async flush(): Promise<void> {
    const { P, d, K } = this;
    if (this.filled === 0) return;
    await accumulateOuter(this.buffer, this.acc, this.spare, P, K, d);
    [this.acc, this.spare] = [this.spare, this.acc];
    this.count += this.filled;
    this.filled = 0;
  }

  /** The statistics; `onProgress` follows the inversion (positions done of all). */
  async finish(onProgress?: (done: number, total: number) => void): Promise<GaussianStats> {
    await this.flushPartial();
    const { P, d } = this;
    const n = this.count;
    if (n < 2)
      throw new KensaError('E_ARGUMENT', `a covariance needs at least 2 training images; ${n} were given`);
    const mean = new Float32Array(P * d);
    const cov = this.acc;
    const m = new Float64Array(d);
    for (let p = 0; p < P; p++) {
      for (let j = 0; j < d; j++) {
        m[j] = this.sum[p * d + j] / n;
        mean[p * d + j] = this.shift![p * d + j] + m[j];
      }
      const o = p * d * d;
      for (let i = 0; i < d; i++) {
        for (let j = 0; j < d; j++) cov[o + i * d + j] = (cov[o + i * d + j] - n * m[i] * m[j]) / (n - 1);
        cov[o + i * d + i] += EPSILON;
      }
    }
    this.spare = new Float32Array(0);
    await this.embed?.release();
    const precision = await invertBatch(cov, P, d, onProgress);
    return { layout: this.layout, mean, precision, count: n };
  }

  /** The last, partly filled chunk: zero its unused slots so they add nothing, then accumulate. */
  private async flushPartial(): Promise<void> {
    if (this.filled === 0) return;
    const { P, d, K } = this;
    const n = this.filled;
    for (let p = 0; p < P; p++) this.buffer.fill(0, (p * K + n) * d, (p + 1) * K * d);
    await this.flush();
  }
}
