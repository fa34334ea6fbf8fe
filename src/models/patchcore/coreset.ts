/**
 * PatchCore's memory-bank subsampling: greedy k-center (farthest-point) selection on a seeded sparse
 * random projection of the patch embeddings, as anomalib's KCenterGreedy does it: a random first patch,
 * then n − 1 picks, each the patch farthest from every patch picked so far (Euclidean distance in the
 * projected space; ties to the lowest index).
 *
 * anomalib's loop makes one pass over all N patches per pick: N·n distance evaluations, hours for a 10 %
 * coreset of ~600 k patches on two cores. The picks here are the same, made lazily: every patch keeps an
 * upper bound of its distance to the picked set — its distance to the picks it has been compared with so
 * far, which can only fall as picks are added — in a max-heap. Each round takes the patches with the
 * highest bounds, brings them up to date against the picks they have not seen (one matrix product per
 * group of similar staleness, on onnxruntime), and makes the pick when the best of them is above every
 * bound left in the heap: that patch is the true farthest one. Memory: the projected rows, a few numbers
 * per patch and the heap — never an N×n distance matrix.
 */
import { encodeGraph, float32Tensor, valueInfo as vi } from '../../onnx/graph.js';
import { OnnxSession } from '../../onnx/runtime.js';
import { KensaError } from '../../util/errors.js';
import { mulberry32 } from '../../util/random.js';

/**
 * Components of the random projection. The original PatchCore code uses 128 and anomalib the
 * Johnson-Lindenstrauss bound (~300); on Magnetic Tile Defects 96 gave the same image and pixel AUROC
 * as 128 (within 0.004) with a 30 % faster coreset (BENCHMARKS.md).
 */
export const PROJECTION_DIM = 96;
/** Candidates brought up to date per round, at least and at most (adapted to how often a round fails). */
const MIN_CANDIDATES = 32;
const MAX_CANDIDATES = 2048;
/** Rows projected per onnxruntime call. */
const PROJECT_ROWS = 65536;

/**
 * A very sparse random projection (Li et al.; as scikit-learn's SparseRandomProjection with the default
 * density 1/√C): each of `dim` components sums about √C of the C inputs with signs ±√(1/density)/√dim.
 * Returned as a dense [C, dim] matrix (mostly zeros).
 */
export function sparseProjection(C: number, dim: number, rand: () => number): Float32Array {
  const density = 1 / Math.sqrt(C);
  const scale = Math.sqrt(1 / density) / Math.sqrt(dim);
  const m = new Float32Array(C * dim);
  for (let k = 0; k < dim; k++)
    for (let c = 0; c < C; c++) if (rand() < density) m[c * dim + k] = rand() < 0.5 ? -scale : scale;
  return m;
}

/** The random projection as an onnxruntime session: rows [n, C] → [n, dim], in blocks of rows. */
export class Projector {
  private constructor(
    private readonly session: OnnxSession,
    readonly C: number,
    readonly dim: number,
  ) {}

  static async create(C: number, matrix: Float32Array): Promise<Projector> {
    const dim = matrix.length / C;
    const session = await OnnxSession.create(
      encodeGraph(
        'projection',
        [{ op: 'MatMul', inputs: ['x', 'r'], output: 'y' }],
        [vi('x', ['n', C])],
        [vi('y', ['n', dim])],
        [float32Tensor('r', [C, dim], matrix)],
      ),
      { arena: false },
    );
    return new Projector(session, C, dim);
  }

  /** Projects `rows` into `out` (from row `at` on). */
  async run(rows: Float32Array, out: Float32Array, at = 0): Promise<void> {
    const { C, dim } = this;
    const N = rows.length / C;
    for (let start = 0; start < N; start += PROJECT_ROWS) {
      const n = Math.min(PROJECT_ROWS, N - start);
      const { y } = await this.session.run({
        x: { data: rows.subarray(start * C, (start + n) * C), dims: [n, C] },
      });
      out.set(y.data, (at + start) * dim);
    }
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** rows [N, C] → projected rows [N, dim] (a matrix product on onnxruntime, in blocks of rows). */
export async function project(rows: Float32Array, C: number, matrix: Float32Array): Promise<Float32Array> {
  const projector = await Projector.create(C, matrix);
  try {
    const out = new Float32Array((rows.length / C) * projector.dim);
    await projector.run(rows, out);
    return out;
  } finally {
    await projector.release();
  }
}

/** Hands control back to the event loop (progress output, Ctrl-C) during long computations. */
const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * min over picks of (|c|² − 2 q·c) for a block of query rows, and which pick gives it: one Gemm, a row
 * minimum and its position (as float32: pick indices stay far below 2²⁴).
 */
function refreshGraph(dim: number): Promise<OnnxSession> {
  return OnnxSession.create(
    encodeGraph(
      'coreset-refresh',
      [
        {
          op: 'Gemm',
          inputs: ['q', 'c', 'c_sq'],
          output: 'part',
          attrs: { alpha: { float: -2 }, transB: 1 },
        },
        { op: 'ReduceMin', inputs: ['part'], output: 'min', attrs: { axes: [1], keepdims: 0 } },
        { op: 'ArgMin', inputs: ['part'], output: 'at64', attrs: { axis: 1, keepdims: 0 } },
        { op: 'Cast', inputs: ['at64'], output: 'at', attrs: { to: 1 } },
      ],
      [vi('q', ['t', dim]), vi('c', ['r', dim]), vi('c_sq', [1, 'r'])],
      [vi('min', ['t']), vi('at', ['t'])],
    ),
    // onnxruntime's arena keeps the [t, r] block between calls (allocating it anew each time is slow);
    // REFRESH_VALUES bounds it. Called alone, round after round: its threads spin between calls
    { spin: true },
  );
}

/**
 * Candidates whose staleness is within this factor share one product (the fresher ones compared with a
 * few picks they have seen: a little waste, against fewer and larger products; 4 measured fastest).
 */
const STALENESS_GROUP = 4;
/** Largest [candidates × picks] block of one refresh call. */
const REFRESH_VALUES = 1 << 23;

/**
 * A coreset and how it covers the rows: for every row the pick (its position in `picks`) it was last found
 * nearest to, and that squared distance in the projected space — an upper bound of its distance to the
 * coreset (rows deep in the heap are compared with fewer picks). PatchCore's calibration uses it to find,
 * for a bank row, the nearest row of another image that it stood for.
 */
export interface Coreset {
  picks: Int32Array;
  owner: Int32Array;
  bound: Float32Array;
}

/**
 * Indices of the greedy k-center coreset of the rows of X ([N, dim]): `start` first, then n − 1
 * farthest-point picks. `onProgress` is called every few hundred picks.
 */
export async function kCenterGreedy(
  X: Float32Array,
  dim: number,
  n: number,
  start: number,
  onProgress?: (done: number, total: number) => void,
): Promise<Int32Array> {
  return (await kCenterCover(X, dim, n, start, onProgress)).picks;
}

/**
 * kCenterGreedy, with how the picks cover every row (Coreset). With `fixed` > 0 the first `fixed` rows are
 * picked already (an existing memory bank that new patches are added to: kensa update) and `start` is
 * not used: the n − fixed further picks are the rows farthest from the bank and from each other.
 */
export async function kCenterCover(
  X: Float32Array,
  dim: number,
  n: number,
  start: number,
  onProgress?: (done: number, total: number) => void,
  fixed = 0,
): Promise<Coreset> {
  const N = X.length / dim;
  if (!(n >= 1 && n <= N) || fixed > n)
    throw new KensaError('E_ARGUMENT', `a coreset of ${n} patches cannot be taken from ${N}`);
  const first = Math.max(1, fixed);
  const picks = new Int32Array(n);
  if (fixed) for (let k = 0; k < fixed; k++) picks[k] = k;
  else picks[0] = start;
  const owner = new Int32Array(N);
  const sq = new Float32Array(N);
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let k = 0; k < dim; k++) s += X[i * dim + k] * X[i * dim + k];
    sq[i] = s;
  }
  const centres = new Float32Array(n * dim);
  const centreSq = new Float32Array(n);
  const addCentre = (k: number, i: number) => {
    centres.set(X.subarray(i * dim, (i + 1) * dim), k * dim);
    centreSq[k] = sq[i];
  };
  for (let k = 0; k < first; k++) addCentre(k, picks[k]);
  // bound[i]: squared distance from i to its nearest of the first seen[i] picks (an upper bound)
  const bound = new Float32Array(N);
  const seen = new Int32Array(N).fill(1);
  if (!fixed)
    for (let i = 0; i < N; i++) {
      let s = 0;
      for (let k = 0; k < dim; k++) {
        const t = X[i * dim + k] - centres[k];
        s += t * t;
      }
      bound[i] = s;
    }
  else {
    // against the fixed picks, every row is brought up to date once (below, before the first pick)
    bound.fill(Infinity);
    seen.fill(0);
  }
  const isPick = (i: number) => (fixed ? i < fixed : i === start);
  if (!fixed && n === 1) return finishCover(picks, owner, bound, n);

  // max-heap of patch indices by (bound desc, index asc)
  const heap = new Int32Array(N);
  let size = 0;
  const above = (a: number, b: number) => bound[a] > bound[b] || (bound[a] === bound[b] && a < b);
  const down = (pos: number) => {
    const item = heap[pos];
    for (;;) {
      let child = 2 * pos + 1;
      if (child >= size) break;
      if (child + 1 < size && above(heap[child + 1], heap[child])) child++;
      if (!above(heap[child], item)) break;
      heap[pos] = heap[child];
      pos = child;
    }
    heap[pos] = item;
  };
  const up = (pos: number) => {
    const item = heap[pos];
    while (pos > 0) {
      const parent = (pos - 1) >> 1;
      if (!above(item, heap[parent])) break;
      heap[pos] = heap[parent];
      pos = parent;
    }
    heap[pos] = item;
  };
  const pop = () => {
    const top = heap[0];
    heap[0] = heap[--size];
    if (size) down(0);
    return top;
  };
  const push = (i: number) => {
    heap[size] = i;
    up(size++);
  };
  for (let i = 0; i < N; i++) if (!isPick(i)) heap[size++] = i;

  const session = await refreshGraph(dim);
  const block = new Float32Array(MAX_CANDIDATES * dim);
  /** Full refresh of rows of `block` against picks [from, to): min of |c|² − 2 q·c per row, and where. */
  const fullMin = async (rows: number, from: number, to: number) => {
    const out = await session.run({
      q: { data: block.subarray(0, rows * dim), dims: [rows, dim] },
      c: { data: centres.subarray(from * dim, to * dim), dims: [to - from, dim] },
      c_sq: { data: centreSq.subarray(from, to), dims: [1, to - from] },
    });
    return { min: out.min.data, at: out.at.data };
  };
  /** Brings the candidates up to date against picks [seen, k), grouped by staleness. */
  const refresh = async (candidates: Int32Array, count: number, k: number) => {
    const stale = Array.from(candidates.subarray(0, count)).filter((i) => seen[i] < k);
    stale.sort((a, b) => seen[a] - seen[b]);
    for (let g = 0; g < stale.length;) {
      const from = seen[stale[g]];
      const span = k - from;
      const most = Math.max(1, Math.floor(REFRESH_VALUES / span));
      let e = g;
      while (e < stale.length && e - g < most && k - seen[stale[e]] > span / STALENESS_GROUP) e++;
      for (let j = g; j < e; j++) block.set(X.subarray(stale[j] * dim, (stale[j] + 1) * dim), (j - g) * dim);
      const { min, at } = await fullMin(e - g, from, k);
      for (let j = g; j < e; j++) {
        const i = stale[j];
        const v = Math.max(0, min[j - g] + sq[i]);
        if (v < bound[i]) {
          bound[i] = v;
          owner[i] = from + at[j - g];
        }
        seen[i] = k;
      }
      g = e;
    }
  };

  try {
    const candidates = new Int32Array(MAX_CANDIDATES);
    if (fixed) {
      // the distance of every other row to the fixed picks, a block of rows at a time
      for (let from = 0; from < size; from += MAX_CANDIDATES) {
        const count = Math.min(MAX_CANDIDATES, size - from);
        candidates.set(heap.subarray(from, from + count));
        await refresh(candidates, count, fixed);
        await breathe();
      }
    }
    for (let p = (size >> 1) - 1; p >= 0; p--) down(p);
    let T = MIN_CANDIDATES;
    let lastBreath = performance.now();
    for (let k = first; k < n; k++) {
      for (;;) {
        let count = 0;
        while (count < T && size > 0) candidates[count++] = pop();
        await refresh(candidates, count, k);
        let best = candidates[0];
        for (let j = 1; j < count; j++) if (above(candidates[j], best)) best = candidates[j];
        if (size === 0 || above(best, heap[0])) {
          // up to date and above every remaining bound: the farthest patch
          for (let j = 0; j < count; j++) if (candidates[j] !== best) push(candidates[j]);
          picks[k] = best;
          addCentre(k, best);
          T = Math.max(MIN_CANDIDATES, Math.floor(T * 0.8));
          break;
        }
        for (let j = 0; j < count; j++) push(candidates[j]);
        T = Math.min(MAX_CANDIDATES, T * 2);
      }
      if (performance.now() - lastBreath > 200) {
        onProgress?.(k + 1, n);
        await breathe();
        lastBreath = performance.now();
      }
    }
    onProgress?.(n, n);
  } finally {
    await session.release();
  }
  return finishCover(picks, owner, bound, n);
}

/** Each pick owns itself, at distance 0. */
function finishCover(picks: Int32Array, owner: Int32Array, bound: Float32Array, n: number): Coreset {
  for (let k = 0; k < n; k++) {
    owner[picks[k]] = k;
    bound[picks[k]] = 0;
  }
  return { picks, owner, bound };
}

/** The coreset of `rows` ([N, C]): projection and start drawn from `seed`; returns the picked row indices. */
export async function coresetIndices(
  rows: Float32Array,
  C: number,
  n: number,
  seed: number,
  onProgress?: (done: number, total: number) => void,
): Promise<Int32Array> {
  const N = rows.length / C;
  if (n >= N) return Int32Array.from({ length: N }, (_, i) => i);
  const rand = mulberry32(seed);
  const matrix = sparseProjection(C, PROJECTION_DIM, rand);
  const start = Math.floor(rand() * N);
  return kCenterGreedy(await project(rows, C, matrix), PROJECTION_DIM, n, start, onProgress);
}

/**
 * Rows that arrive in batches, kept in one buffer that grows by half when full (start it at the expected
 * count: then nothing is ever copied, and no second copy of every patch exists at any time).
 */
export class GrowingRows {
  data: Float32Array;
  length = 0;

  constructor(
    readonly width: number,
    expected: number,
  ) {
    this.data = new Float32Array(Math.max(1, expected) * width);
  }

  /** Room for `n` more rows; returns the row index where they go. */
  reserve(n: number): number {
    const need = (this.length + n) * this.width;
    if (need > this.data.length) {
      const grown = new Float32Array(Math.max(need, Math.ceil(this.data.length * 1.5)));
      grown.set(this.data.subarray(0, this.length * this.width));
      this.data = grown;
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  /** The rows added so far (a view). */
  rows(): Float32Array {
    return this.data.subarray(0, this.length * this.width);
  }
}

/**
 * The same coreset as coresetIndices, for rows that arrive in batches: each batch is projected as it
 * comes (the projection drawn from `seed` first, the start after it, as there), so only the rows and
 * their projection are kept, never a second copy.
 */
export class StreamingCoreset {
  private readonly rand: () => number;
  private readonly matrix: Float32Array;
  private projector?: Projector;
  readonly projected: GrowingRows;

  constructor(
    readonly C: number,
    seed: number,
    expected: number,
  ) {
    this.rand = mulberry32(seed);
    this.matrix = sparseProjection(C, PROJECTION_DIM, this.rand);
    this.projected = new GrowingRows(PROJECTION_DIM, expected);
  }

  async add(rows: Float32Array): Promise<void> {
    this.projector ??= await Projector.create(this.C, this.matrix);
    const n = rows.length / this.C;
    const at = this.projected.reserve(n);
    await this.projector.run(rows, this.projected.data, at);
  }

  /**
   * The picked row indices (n of the rows added, in pick order; all of them when n ≥ their count), with
   * how they cover the rows. `fixed`: the first rows added are picked already (see kCenterCover).
   */
  async take(n: number, onProgress?: (done: number, total: number) => void, fixed = 0): Promise<Coreset> {
    await this.release();
    const N = this.projected.length;
    if (n >= N) {
      const all = Int32Array.from({ length: N }, (_, i) => i);
      return { picks: all, owner: all.slice(), bound: new Float32Array(N) };
    }
    const start = fixed ? 0 : Math.floor(this.rand() * N);
    return kCenterCover(this.projected.rows(), PROJECTION_DIM, n, start, onProgress, fixed);
  }

  async release(): Promise<void> {
    await this.projector?.release();
    this.projector = undefined;
  }
}
