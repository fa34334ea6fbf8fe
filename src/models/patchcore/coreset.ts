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

/** Components of the random projection (the original PatchCore code's 128). */
export const PROJECTION_DIM = 128;
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

/** rows [N, C] → projected rows [N, dim] (a matrix product on onnxruntime, in blocks of rows). */
export async function project(rows: Float32Array, C: number, matrix: Float32Array): Promise<Float32Array> {
  const dim = matrix.length / C;
  const N = rows.length / C;
  const out = new Float32Array(N * dim);
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
  try {
    for (let start = 0; start < N; start += PROJECT_ROWS) {
      const n = Math.min(PROJECT_ROWS, N - start);
      const { y } = await session.run({
        x: { data: rows.subarray(start * C, (start + n) * C), dims: [n, C] },
      });
      out.set(y.data, start * dim);
    }
  } finally {
    await session.release();
  }
  return out;
}

/** Hands control back to the event loop (progress output, Ctrl-C) during long computations. */
const breathe = () => new Promise<void>((resolve) => setImmediate(resolve));

/** min over picks of (|c|² − 2 q·c) for a block of query rows: one Gemm and a row minimum. */
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
      ],
      [vi('q', ['t', dim]), vi('c', ['r', dim]), vi('c_sq', [1, 'r'])],
      [vi('min', ['t'])],
    ),
    // onnxruntime's arena keeps the [t, r] block between calls (allocating it anew each time is slow);
    // REFRESH_VALUES bounds it
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
  const N = X.length / dim;
  if (!(n >= 1 && n <= N))
    throw new KensaError('E_ARGUMENT', `a coreset of ${n} patches cannot be taken from ${N}`);
  const picks = new Int32Array(n);
  picks[0] = start;
  if (n === 1) return picks;
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
  addCentre(0, start);
  // bound[i]: squared distance from i to its nearest of the first seen[i] picks (an upper bound)
  const bound = new Float32Array(N);
  const seen = new Int32Array(N).fill(1);
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let k = 0; k < dim; k++) {
      const t = X[i * dim + k] - centres[k];
      s += t * t;
    }
    bound[i] = s;
  }

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
  for (let i = 0; i < N; i++) if (i !== start) heap[size++] = i;
  for (let p = (size >> 1) - 1; p >= 0; p--) down(p);

  const session = await refreshGraph(dim);
  const block = new Float32Array(MAX_CANDIDATES * dim);
  /** Full refresh of rows of `block` against picks [from, to): min of |c|² − 2 q·c per row. */
  const fullMin = async (rows: number, from: number, to: number) =>
    (
      await session.run({
        q: { data: block.subarray(0, rows * dim), dims: [rows, dim] },
        c: { data: centres.subarray(from * dim, to * dim), dims: [to - from, dim] },
        c_sq: { data: centreSq.subarray(from, to), dims: [1, to - from] },
      })
    ).min.data;
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
      const min = await fullMin(e - g, from, k);
      for (let j = g; j < e; j++) {
        const i = stale[j];
        const v = Math.max(0, min[j - g] + sq[i]);
        if (v < bound[i]) bound[i] = v;
        seen[i] = k;
      }
      g = e;
    }
  };

  try {
    const candidates = new Int32Array(MAX_CANDIDATES);
    let T = MIN_CANDIDATES;
    let lastBreath = performance.now();
    for (let k = 1; k < n; k++) {
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
  return picks;
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
