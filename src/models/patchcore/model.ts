/**
 * The PatchCore model (Roth et al. 2022, as anomalib 2.x builds it): a memory bank of good patch
 * embeddings — a greedy coreset of all training patches — and, for a test patch, the distance to its
 * nearest bank row. Position-free: one bank serves every position of every image size and every tile.
 *
 * Image score (anomalib's compute_anomaly_score): the patch with the largest nearest-neighbour distance s*
 * (m_test*), its nearest bank row m*, the k bank rows nearest to m* (m* first); with d_j the distances from
 * m_test* to those rows, the score is (1 − softmax(d)_0) · s*. With k = 1 it is s*.
 *
 * Fitting keeps every training patch embedding (with the index of its image) and its random projection
 * until the coreset is taken, each in one buffer sized from the expected patch count.
 * Out-of-fold calibration scores a fold against the bank without the rows drawn from that fold's images,
 * each replaced by the nearest patch of another fold's image that it stood for: one coreset serves all
 * folds (the training patches are kept until the model is finished).
 */
import { KensaError } from '../../util/errors.js';
import type { CellRect, Features, Fitter, Fold, MethodState, PatchScores, Scorer } from '../method.js';
import { GrowingRows, StreamingCoreset } from './coreset.js';
import { NearestGraph, NearestSearch } from './graphs.js';
import { EmbedGraph, EMBEDDING_STRIDE } from '../patch-embedding.js';

/** Grid stride in input pixels (the stride-8 map). */
export const PATCHCORE_STRIDE = EMBEDDING_STRIDE;
export const DEFAULT_CORESET = 0.1;
export const DEFAULT_NEIGHBORS = 9;

export interface PatchcoreState extends MethodState {
  method: 'patchcore';
  /** Channels of the backbone's three maps (the embedding uses the second and third). */
  channels: [number, number, number];
  /** Memory bank [M, C]. */
  bank: Float32Array;
  /** Embedding width C. */
  dim: number;
  /** Neighbours of the image-score re-weighting (1 = the largest patch distance). */
  neighbors: number;
  coreset: number;
  seed: number;
  /** Training patches the coreset was taken from. */
  patches: number;
}

/** The re-weighting factor 1 − softmax(d)_0 for distances d (d_0 to m* itself first). */
export function reweight(d: ArrayLike<number>): number {
  let max = -Infinity;
  for (let j = 0; j < d.length; j++) max = Math.max(max, d[j]);
  let sum = 0;
  for (let j = 0; j < d.length; j++) sum += Math.exp(d[j] - max);
  return 1 - Math.exp(d[0] - max) / sum;
}

export class PatchcoreScorer implements Scorer {
  readonly stride = PATCHCORE_STRIDE;

  private constructor(
    private readonly embed: EmbedGraph,
    private readonly nearest: NearestSearch | NearestGraph,
    private readonly support: NearestGraph | undefined,
    private readonly bank: Float32Array,
    private readonly dim: number,
  ) {}

  static async open(
    bank: Float32Array,
    dim: number,
    neighbors: number,
    channels: [number, number, number],
  ): Promise<PatchcoreScorer> {
    if (bank.length === 0) throw new KensaError('E_ARGUMENT', 'the memory bank is empty');
    const embed = await EmbedGraph.create(channels);
    const nearest = await NearestSearch.create(bank, dim);
    const support = neighbors > 1 ? await NearestGraph.create(bank, dim, neighbors) : undefined;
    return new PatchcoreScorer(embed, nearest, support, bank, dim);
  }

  /**
   * The patch embedding [B·h·w, C] and every cell's distance to its nearest bank row [B, h, w] of a batch of
   * whole inputs, without the image score: for a head that scores the image from both (the patch classifier).
   */
  async distances(
    features: Features,
  ): Promise<{ rows: Float32Array; grid: Float32Array; dims: [number, number, number] }> {
    const [B, , h, w] = features[1].dims;
    const rows = await this.embed.run(features);
    const { dist } = await this.nearest.run(rows);
    return { rows, grid: dist, dims: [B, h, w] };
  }

  /** Searches the nearest bank rows of the owned cells only: the cells a tile shares with a better-placed one stay 0. */
  async score(features: Features, owned?: readonly CellRect[]): Promise<PatchScores> {
    const [B, , h, w] = features[1].dims;
    const emb = await this.embed.run(features);
    const { dist, index } = await this.nearestOwned(emb, B, h, w, owned);
    const raw = new Float32Array(B);
    const top = new Int32Array(B);
    const nn = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      const r = owned?.[b] ?? { y0: 0, y1: h, x0: 0, x1: w };
      let best = -Infinity;
      let at = b * h * w;
      for (let y = r.y0; y < r.y1; y++)
        for (let x = r.x0; x < r.x1; x++) {
          const p = b * h * w + y * w + x;
          if (dist[p] > best) [best, at] = [dist[p], p];
        }
      raw[b] = best;
      top[b] = at;
      nn[b] = index[at];
    }
    return { grid: dist, dims: [B, h, w], peaks: { raw, score: await this.reweighted(emb, top, nn, raw) } };
  }

  private async nearestOwned(
    emb: Float32Array,
    B: number,
    h: number,
    w: number,
    owned?: readonly CellRect[],
  ): Promise<{ dist: Float32Array; index: Int32Array }> {
    let n = 0;
    for (const o of owned ?? []) n += (o.y1 - o.y0) * (o.x1 - o.x0);
    if (!owned || n === B * h * w) return this.nearest.run(emb);
    const C = this.dim;
    const queries = new Float32Array(n * C);
    const cells = new Int32Array(n);
    let k = 0;
    for (let b = 0; b < B; b++) {
      const o = owned[b];
      for (let y = o.y0; y < o.y1; y++) {
        const from = b * h * w + y * w;
        queries.set(emb.subarray((from + o.x0) * C, (from + o.x1) * C), k * C);
        for (let x = o.x0; x < o.x1; x++) cells[k++] = from + x;
      }
    }
    const found = await this.nearest.run(queries);
    const dist = new Float32Array(B * h * w);
    const index = new Int32Array(B * h * w);
    for (let i = 0; i < n; i++) {
      dist[cells[i]] = found.dist[i];
      index[cells[i]] = found.index[i];
    }
    return { dist, index };
  }

  /** anomalib's image score from each image's peak patch (top), its nearest bank row (nn) and distance. */
  private async reweighted(
    emb: Float32Array,
    top: Int32Array,
    nn: Int32Array,
    raw: Float32Array,
  ): Promise<Float32Array> {
    if (!this.support) return raw.slice();
    const C = this.dim;
    const B = raw.length;
    const score = new Float32Array(B);
    // m* of each image, and the bank rows nearest to it (m* itself first)
    const queries = new Float32Array(B * C);
    for (let b = 0; b < B; b++) queries.set(this.bank.subarray(nn[b] * C, (nn[b] + 1) * C), b * C);
    const near = await this.support.run(queries);
    const k = this.support.k;
    const d = new Float64Array(k);
    for (let b = 0; b < B; b++) {
      const e = top[b] * C;
      for (let j = 0; j < k; j++) {
        const m = near.index[b * k + j] * C;
        let s = 0;
        for (let c = 0; c < C; c++) {
          const t = emb[e + c] - this.bank[m + c];
          s += t * t;
        }
        d[j] = Math.sqrt(s);
      }
      score[b] = reweight(d) * raw[b];
    }
    return score;
  }

  async release(): Promise<void> {
    await this.embed.release();
    await this.nearest.release();
    await this.support?.release();
  }
}

/**
 * What the coreset leaves behind for calibration: every training patch (until the model is finished),
 * its image, and the bank row it was found nearest to, with that distance (projected, squared).
 */
interface Cover {
  rows: Float32Array;
  images: Int32Array;
  owner: Int32Array;
  bound: Float32Array;
  /** The patch of each bank row. */
  picks: Int32Array;
  /** The patches each bank row stands for, as one list (CSR): members of row b at [start[b], start[b+1]). */
  members?: { start: Int32Array; list: Int32Array };
}

/**
 * Puts the rows from `from` on into the order of their images (stable: an image's own rows keep their
 * order), in place: `images` and every buffer of rows (each `images.length` rows wide as a whole). Nothing
 * moves when they are in order already.
 */
export function inImageOrder(images: number[], from: number, buffers: Float32Array[]): void {
  const N = images.length;
  let sorted = true;
  for (let i = from + 1; i < N && sorted; i++) sorted = images[i - 1] <= images[i];
  if (sorted) return;
  // order[k]: the row that goes to position from + k (a counting sort by image)
  let top = 0;
  for (let i = from; i < N; i++) top = Math.max(top, images[i]);
  const start = new Int32Array(top + 2);
  for (let i = from; i < N; i++) start[images[i] + 1]++;
  for (let v = 0; v <= top; v++) start[v + 1] += start[v];
  const order = new Int32Array(N - from);
  for (let i = from; i < N; i++) order[start[images[i]]++] = i;
  for (const data of buffers) {
    const width = data.length / N;
    if (!Number.isInteger(width)) throw new KensaError('E_RUNTIME', 'row buffers of different lengths');
    permuteRows(data, width, from, order);
  }
  const moved = Array.from(order, (i) => images[i]);
  for (let k = 0; k < moved.length; k++) images[from + k] = moved[k];
}

/** Row from + k of `data` becomes the row order[k] was, in place (by cycles, one spare row). */
function permuteRows(data: Float32Array, width: number, from: number, order: Int32Array): void {
  const done = new Uint8Array(order.length);
  const spare = new Float32Array(width);
  for (let s = 0; s < order.length; s++) {
    if (done[s] || order[s] === from + s) continue;
    spare.set(data.subarray((from + s) * width, (from + s + 1) * width));
    let k = s;
    for (;;) {
      done[k] = 1;
      const src = order[k] - from;
      if (src === s) {
        data.set(spare, (from + k) * width);
        break;
      }
      data.copyWithin((from + k) * width, (from + src) * width, (from + src + 1) * width);
      k = src;
    }
  }
}

/** Collects training patch embeddings (and their images), then takes the coreset once. */
export class PatchcoreFitter implements Fitter<PatchcoreState> {
  private rows?: GrowingRows;
  private images: number[] = [];
  private stream?: StreamingCoreset;
  private embed?: EmbedGraph;
  private picked?: { bank: Float32Array; images: Int32Array; patches: number };
  private cover?: Cover;
  readonly timings: Record<string, number> = {};

  /**
   * `expected`: about how many patches will be added (the buffers start at that size). `prior`: a fitted
   * bank that the added images extend (kensa update): its rows stay in the bank, the new patches' coreset
   * is taken against them (the new patches farthest from the bank and from each other, the coreset share
   * of them), and out-of-fold calibration leaves out new images only.
   */
  constructor(
    private readonly channels: [number, number, number],
    private readonly coreset: number,
    private readonly neighbors: number,
    private readonly seed: number,
    private readonly expected = 1 << 16,
    private readonly prior?: { bank: Float32Array; patches: number },
  ) {}

  /** Bank rows taken over from the prior state (the first rows of every buffer). */
  private get fixed(): number {
    return this.prior ? this.prior.bank.length / this.dim : 0;
  }

  private get dim(): number {
    return this.channels[1] + this.channels[2];
  }

  /** Keeps each batch element's owned cells only: the overlaps of tiles are taken once. */
  async add(features: Features, images: readonly number[], owned: readonly CellRect[]): Promise<void> {
    if (this.picked) throw new KensaError('E_ARGUMENT', 'patches cannot be added after the coreset is taken');
    this.embed ??= await EmbedGraph.create(this.channels);
    const all = await this.embed.run(features);
    const [B, , h, w] = features[1].dims;
    const C = this.dim;
    if (!this.rows || !this.stream) {
      this.rows = new GrowingRows(C, this.expected + this.fixed);
      this.stream = new StreamingCoreset(C, this.seed, this.expected + this.fixed);
      if (this.prior) {
        // the prior bank first (image −1: in no fold), projected as the new patches are
        this.rows.reserve(this.fixed);
        this.rows.data.set(this.prior.bank);
        for (let i = 0; i < this.fixed; i++) this.images.push(-1);
        await this.stream.add(this.prior.bank);
      }
    }
    let n = 0;
    for (const o of owned) n += (o.y1 - o.y0) * (o.x1 - o.x0);
    const first = this.rows.reserve(n);
    let at = first;
    for (let b = 0; b < B; b++) {
      const o = owned[b];
      for (let y = o.y0; y < o.y1; y++) {
        const from = (b * h + y) * w;
        this.rows.data.set(all.subarray((from + o.x0) * C, (from + o.x1) * C), at * C);
        for (let x = o.x0; x < o.x1; x++) this.images.push(images[b]);
        at += o.x1 - o.x0;
      }
    }
    await this.stream.add(this.rows.data.subarray(first * C, at * C));
  }

  /** The coreset of every patch added so far (taken once); the patches stay for calibration. */
  private async bankOf(onProgress?: (done: number, total: number) => void) {
    if (this.picked) return this.picked;
    const C = this.dim;
    const N = this.rows?.length ?? 0;
    const fixed = this.fixed;
    if (!this.rows || !this.stream || N === fixed)
      throw new KensaError('E_ARGUMENT', 'PatchCore needs training patches; no image was added');
    const n = fixed + Math.max(fixed ? 0 : 1, Math.floor((N - fixed) * this.coreset));
    // batches of several image shapes come out of the images' order; the coreset (its random start, its
    // ties) is taken from the patches in the images' order, as if they had come one image after another
    inImageOrder(this.images, fixed, [this.rows.rows(), this.stream.projected.rows()]);
    const t0 = performance.now();
    const { picks, owner, bound } = await this.stream.take(n, onProgress, fixed);
    this.timings.coreset = (performance.now() - t0) / 1000;
    const rows = this.rows.rows();
    const images = Int32Array.from(this.images);
    const bank = new Float32Array(picks.length * C);
    const bankImages = new Int32Array(picks.length);
    picks.forEach((p, i) => {
      bank.set(rows.subarray(p * C, (p + 1) * C), i * C);
      bankImages[i] = images[p];
    });
    this.picked = { bank, images: bankImages, patches: (this.prior?.patches ?? 0) + N - fixed };
    this.cover = { rows, images, owner, bound, picks };
    this.rows = undefined;
    this.stream = undefined;
    this.images = [];
    return this.picked;
  }

  /** The patches each bank row stands for (built once, by counting). */
  private membersOf(cover: Cover): NonNullable<Cover['members']> {
    if (cover.members) return cover.members;
    const M = cover.picks.length;
    const start = new Int32Array(M + 1);
    for (let i = 0; i < cover.owner.length; i++) start[cover.owner[i] + 1]++;
    for (let b = 0; b < M; b++) start[b + 1] += start[b];
    const fill = start.slice(0, M);
    const list = new Int32Array(cover.owner.length);
    for (let i = 0; i < cover.owner.length; i++) list[fill[cover.owner[i]]++] = i;
    return (cover.members = { start, list });
  }

  /**
   * The bank as if the fold's images had not been seen: its rows drawn from other images, and for each
   * row drawn from the fold, the patch of another fold's image nearest to it among those it stood for —
   * the patch a coreset of the other images would have kept there. Without it a fold model has holes
   * wherever the fold's own patches were picked (a near-copy of a fold image in another fold, never picked
   * because the fold image covered it, would be missing too), and its scores run higher than new images'.
   */
  async without(fold: Fold, onProgress?: (done: number, total: number) => void): Promise<Scorer> {
    const { bank, images } = await this.bankOf(onProgress);
    const cover = this.cover!;
    const { start, list } = this.membersOf(cover);
    const C = this.dim;
    const rows: number[] = [];
    const stand: number[] = [];
    for (let b = 0; b < images.length; b++) {
      if (!fold.images.has(images[b])) {
        rows.push(b);
        continue;
      }
      let best = -1;
      for (let j = start[b]; j < start[b + 1]; j++) {
        const i = list[j];
        if (!fold.images.has(cover.images[i]) && (best < 0 || cover.bound[i] < cover.bound[best])) best = i;
      }
      if (best >= 0) stand.push(best);
    }
    if (rows.length + stand.length === 0)
      throw new KensaError(
        'E_ARGUMENT',
        'every memory-bank patch comes from one fold; use more good images or fewer folds',
      );
    const part = new Float32Array((rows.length + stand.length) * C);
    rows.forEach((b, k) => part.set(bank.subarray(b * C, (b + 1) * C), k * C));
    stand.forEach((i, k) => part.set(cover.rows.subarray(i * C, (i + 1) * C), (rows.length + k) * C));
    return PatchcoreScorer.open(part, C, this.neighbors, this.channels);
  }

  async finish(onProgress?: (done: number, total: number) => void): Promise<PatchcoreState> {
    const { bank, patches } = await this.bankOf(onProgress);
    this.cover = undefined;
    await this.release();
    return {
      method: 'patchcore',
      channels: this.channels,
      bank,
      dim: this.dim,
      neighbors: this.neighbors,
      coreset: this.coreset,
      seed: this.seed,
      patches,
    };
  }

  async release(): Promise<void> {
    await this.embed?.release();
    this.embed = undefined;
    await this.stream?.release();
  }
}
