/**
 * PatchCore's per-batch work as ONNX graphs on onnxruntime:
 *
 *   embed:    the patch embedding (models/patch-embedding.ts), one row per patch [B·h·w, C]
 *   nearest:  a chunk of patch rows [Q, C] against the memory bank → the k smallest squared distances
 *             and their bank rows, from one Gemm (−2·q·bᵀ + |b|², the bank side prepared once) and a TopK;
 *             |q|² is added to the k values only, never to the whole [Q, M] block
 *   pruned:   the same answer for k = 1 at about 70 % of the cost (NearestSearch): a lower bound from the
 *             leading principal components picks candidates, their exact distances decide, and a row
 *             whose answer the bound cannot certify goes through `nearest`
 */
import { encodeGraph, float32Tensor, int64Tensor, valueInfo as vi, type NodeSpec } from '../../onnx/graph.js';
import { OnnxSession } from '../../onnx/runtime.js';
import { principalAxes, rotate } from './pca.js';
import { embedInitializers, embedNodes, embeddingShapes } from '../patch-embedding.js';

export { EmbedGraph } from '../patch-embedding.js';

/** Bank rows per block of the exported nearest-neighbour search ([Q, EXPORT_BLOCK] distances at a time). */
export const EXPORT_BLOCK = 8192;

/**
 * The scorer as one graph, for kensa export: the embedding; the nearest bank row of every patch, exactly
 * (the bank in blocks of EXPORT_BLOCK rows: each block's smallest distance and its row, then the smallest
 * of the blocks — the full search's answer, without a [patches, bank] matrix); the grid [N, h, w]; and
 * anomalib's re-weighted image score from the peak patch, as PatchcoreScorer computes it.
 */
export function patchcoreExportGraph(
  bank: Float32Array,
  C: number,
  neighbors: number,
  /** A graph input [N, h, w] of 0/1: the cells the image score may come from (a tile's own cells). */
  owned?: string,
): { nodes: NodeSpec[]; initializers: ReturnType<typeof float32Tensor>[]; grid: string; score: string } {
  const M = bank.length / C;
  const shapes = embeddingShapes();
  const nodes: NodeSpec[] = [
    ...embedNodes(),
    ...shapes.nodes,
    { op: 'Mul', inputs: ['emb', 'emb'], output: 'ee' },
    { op: 'ReduceSum', inputs: ['ee', 'one'], output: 'e_sq', attrs: { keepdims: 1 } },
  ];
  const initializers = [...embedInitializers(C), ...shapes.initializers];
  const blocks = Math.ceil(M / EXPORT_BLOCK);
  const bankSq = new Float32Array(M);
  for (let m = 0; m < M; m++) {
    let s = 0;
    for (let c = 0; c < C; c++) s += bank[m * C + c] ** 2;
    bankSq[m] = s;
  }
  for (let k = 0; k < blocks; k++) {
    const from = k * EXPORT_BLOCK;
    const to = Math.min(M, from + EXPORT_BLOCK);
    initializers.push(
      float32Tensor(`bank_${k}`, [to - from, C], bank.slice(from * C, to * C)),
      float32Tensor(`bank_sq_${k}`, [1, to - from], bankSq.slice(from, to)),
      int64Tensor(`offset_${k}`, [from]),
    );
    nodes.push(
      // −2·e·bᵀ + |b|²; |e|² is added to the smallest only
      {
        op: 'Gemm',
        inputs: ['emb', `bank_${k}`, `bank_sq_${k}`],
        output: `part_${k}`,
        attrs: { transB: 1, alpha: { float: -2 } },
      },
      { op: 'ReduceMin', inputs: [`part_${k}`], output: `min_${k}`, attrs: { axes: [1], keepdims: 1 } },
      { op: 'ArgMin', inputs: [`part_${k}`], output: `arg_${k}`, attrs: { axis: 1, keepdims: 1 } },
      { op: 'Add', inputs: [`arg_${k}`, `offset_${k}`], output: `row_${k}` },
    );
  }
  const range = Array.from({ length: blocks }, (_, k) => k);
  nodes.push(
    { op: 'Concat', inputs: range.map((k) => `min_${k}`), output: 'mins', attrs: { axis: 1 } },
    { op: 'Concat', inputs: range.map((k) => `row_${k}`), output: 'rows_k', attrs: { axis: 1 } },
    { op: 'ReduceMin', inputs: ['mins'], output: 'part_min', attrs: { axes: [1], keepdims: 1 } },
    { op: 'ArgMin', inputs: ['mins'], output: 'block', attrs: { axis: 1, keepdims: 1 } },
    { op: 'GatherElements', inputs: ['rows_k', 'block'], output: 'nearest', attrs: { axis: 1 } },
    { op: 'Add', inputs: ['part_min', 'e_sq'], output: 'd2' },
    { op: 'Relu', inputs: ['d2'], output: 'd2pos' },
    { op: 'Sqrt', inputs: ['d2pos'], output: 'dist' },
    { op: 'Reshape', inputs: ['dist', 'grid_shape'], output: 'grid' },
    // the peak patch of each image (among its owned cells) and its distance s*; distances are ≥ 0, so
    // zeroing the cells a tile does not own leaves the owned maximum
    { op: 'Reshape', inputs: ['dist', 'flat_shape'], output: owned ? 'dist_all' : 'dist_flat' },
    ...(owned
      ? [
          { op: 'Reshape', inputs: [owned, 'flat_shape'], output: 'owned_flat' },
          { op: 'Mul', inputs: ['dist_all', 'owned_flat'], output: 'dist_flat' },
        ]
      : []),
    { op: 'ReduceMax', inputs: ['dist_flat'], output: 's_star', attrs: { axes: [1], keepdims: 0 } },
  );
  if (neighbors <= 1) {
    nodes.push({ op: 'Identity', inputs: ['s_star'], output: 'score' });
    return { nodes, initializers, grid: 'grid', score: 'score' };
  }
  const K = Math.min(neighbors, M);
  initializers.push(int64Tensor('k', [K]));
  nodes.push(
    { op: 'Concat', inputs: range.map((k) => `bank_${k}`), output: 'bank', attrs: { axis: 0 } },
    { op: 'Concat', inputs: range.map((k) => `bank_sq_${k}`), output: 'bank_sq', attrs: { axis: 1 } },
    { op: 'ArgMax', inputs: ['dist_flat'], output: 'top', attrs: { axis: 1, keepdims: 1 } },
    { op: 'Concat', inputs: ['n', 'minus_one', 'emb_width'], output: 'emb3_shape', attrs: { axis: 0 } },
    { op: 'Reshape', inputs: ['emb', 'emb3_shape'], output: 'emb3' },
    { op: 'GatherND', inputs: ['emb3', 'top'], output: 'peak', attrs: { batch_dims: 1 } },
    { op: 'Reshape', inputs: ['nearest', 'flat_shape'], output: 'nearest_flat' },
    { op: 'GatherElements', inputs: ['nearest_flat', 'top'], output: 'm_row', attrs: { axis: 1 } },
    { op: 'Squeeze', inputs: ['m_row', 'one'], output: 'm_row1' },
    { op: 'Gather', inputs: ['bank', 'm_row1'], output: 'm_star', attrs: { axis: 0 } },
    // the bank rows nearest to m* (m* first) and the peak patch's distances to them
    {
      op: 'Gemm',
      inputs: ['m_star', 'bank', 'bank_sq'],
      output: 'support_part',
      attrs: { transB: 1, alpha: { float: -2 } },
    },
    {
      op: 'TopK',
      inputs: ['support_part', 'k'],
      output: ['support_d', 'support'],
      attrs: { axis: 1, largest: 0, sorted: 1 },
    },
    { op: 'Gather', inputs: ['bank', 'support'], output: 'support_rows', attrs: { axis: 0 } },
    { op: 'Unsqueeze', inputs: ['peak', 'one'], output: 'peak3' },
    { op: 'Sub', inputs: ['support_rows', 'peak3'], output: 'sdiff' },
    { op: 'Mul', inputs: ['sdiff', 'sdiff'], output: 'sdiff2' },
    { op: 'ReduceSum', inputs: ['sdiff2', 'two'], output: 'sd2', attrs: { keepdims: 0 } },
    { op: 'Sqrt', inputs: ['sd2'], output: 'sd' },
    { op: 'Softmax', inputs: ['sd'], output: 'soft', attrs: { axis: 1 } },
    { op: 'Slice', inputs: ['soft', 'zero', 'one', 'one'], output: 'soft0' },
    { op: 'Squeeze', inputs: ['soft0', 'one'], output: 'soft0_1' },
    { op: 'Sub', inputs: ['one_f', 'soft0_1'], output: 'weight' },
    { op: 'Mul', inputs: ['weight', 's_star'], output: 'score' },
  );
  initializers.push(int64Tensor('emb_width', [C]), float32Tensor('one_f', [1], Float32Array.from([1])));
  return { nodes, initializers, grid: 'grid', score: 'score' };
}

/** Squared distances are computed in blocks of about this many values ([Q, M] for Q patch rows). */
export const BLOCK_VALUES = 1 << 22;

/**
 * The k nearest bank rows of every query row, exactly (no approximation): distances and bank indices.
 * The bank goes in once, as −2·Bᵀ [C, M] and |b|² [1, M].
 */
export class NearestGraph {
  private readonly M: number;

  private constructor(
    private readonly session: OnnxSession,
    private readonly C: number,
    readonly k: number,
    M: number,
  ) {
    this.M = M;
  }

  /** bank: [M, C] rows. */
  static async create(bank: Float32Array, C: number, k: number): Promise<NearestGraph> {
    const M = bank.length / C;
    const bankT = new Float32Array(C * M);
    const bankSq = new Float32Array(M);
    for (let m = 0; m < M; m++) {
      let s = 0;
      for (let c = 0; c < C; c++) {
        const v = bank[m * C + c];
        bankT[c * M + m] = -2 * v;
        s += v * v;
      }
      bankSq[m] = s;
    }
    const K = Math.min(k, M);
    const nodes: NodeSpec[] = [
      { op: 'Gemm', inputs: ['q', 'bank_t', 'bank_sq'], output: 'part' },
      {
        op: 'TopK',
        inputs: ['part', 'k'],
        output: ['part_k', 'index64'],
        attrs: { axis: 1, largest: 0, sorted: 1 },
      },
      { op: 'Mul', inputs: ['q', 'q'], output: 'qq' },
      { op: 'ReduceSum', inputs: ['qq', 'axis1'], output: 'q_sq', attrs: { keepdims: 1 } },
      { op: 'Add', inputs: ['part_k', 'q_sq'], output: 'd2' },
      { op: 'Relu', inputs: ['d2'], output: 'd2pos' },
      { op: 'Sqrt', inputs: ['d2pos'], output: 'dist' },
      // bank rows as float: exact for banks below 2^24 rows
      { op: 'Cast', inputs: ['index64'], output: 'index', attrs: { to: 1 } },
    ];
    // the bank is a constant of the graph, so onnxruntime packs it for the product once, not per call
    const model = encodeGraph(
      'patchcore-nearest',
      nodes,
      [vi('q', ['q', C])],
      [vi('dist', ['q', K]), vi('index', ['q', K])],
      [
        float32Tensor('bank_t', [C, M], bankT),
        float32Tensor('bank_sq', [1, M], bankSq),
        int64Tensor('k', [K]),
        int64Tensor('axis1', [1]),
      ],
    );
    return new NearestGraph(await OnnxSession.create(model), C, K, M);
  }

  /** Rows per call, so that one [Q, M] block stays about BLOCK_VALUES values. */
  get rowsPerCall(): number {
    return Math.max(1, Math.floor(BLOCK_VALUES / this.M));
  }

  /** Distances and indices [Q, k] of the query rows [Q, C], in blocks. */
  async run(queries: Float32Array): Promise<{ dist: Float32Array; index: Int32Array }> {
    const { C, k } = this;
    const Q = queries.length / C;
    const dist = new Float32Array(Q * k);
    const index = new Int32Array(Q * k);
    const rows = this.rowsPerCall;
    for (let start = 0; start < Q; start += rows) {
      const n = Math.min(rows, Q - start);
      const out = await this.session.run({
        q: { data: queries.subarray(start * C, (start + n) * C), dims: [n, C] },
      });
      dist.set(out.dist.data, start * k);
      const idx = out.index.data;
      for (let i = 0; i < idx.length; i++) index[start * k + i] = idx[i];
    }
    return { dist, index };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * The lower bound uses the leading principal components that hold this share of the bank's variance,
 * and CANDIDATES rows per query get an exact distance. Measured on Magnetic Tile Defects test patches
 * against a 10 % coreset bank of 152-value embeddings: 96 components (96.6 % of the variance) certify
 * 96 % of rows, 1.4× faster than the full search; a coreset is spread out, so the bound needs most of
 * the variance (64 components, 92 %, certify only 58 %). When that takes most components, the full
 * search is used.
 */
const BOUND_VARIANCE = 0.965;
const MAX_BOUND_SHARE = 0.7;
const CANDIDATES = 16;
/** Bound values per call of the pruned search ([Q, M] for Q rows). */
const PRUNED_BLOCK_VALUES = 1 << 24;
/** A certified answer must stand below the bound by this relative margin (float32 rounding of both). */
const CERTAINTY = 1e-3;

/**
 * The nearest bank row of every query row, exactly, for about 70 % of the work of a full search: on
 * the bank's principal axes, the squared distance over the leading components is a lower
 * bound of the whole one. The CANDIDATES rows with the smallest bounds get exact distances; when the next
 * bound is above the best of them, no other row can be nearer. Rows where it is not (a few percent of
 * patches on real data) are searched in full.
 */
export class NearestSearch {
  private constructor(
    private readonly session: OnnxSession,
    private readonly full: NearestGraph,
    private readonly C: number,
    private readonly M: number,
  ) {}

  static async create(bank: Float32Array, C: number): Promise<NearestSearch | NearestGraph> {
    const M = bank.length / C;
    const full = await NearestGraph.create(bank, C, 1);
    if (M <= 4 * CANDIDATES) return full;
    const pca = await principalAxes(bank, C);
    const total = pca.variances.reduce((a, b) => a + b, 0);
    let m = 0;
    for (let held = 0; m < C && held < BOUND_VARIANCE * total; m++) held += pca.variances[m];
    m = Math.min(C, Math.ceil(m / 8) * 8);
    if (m > MAX_BOUND_SHARE * C) return full;
    const rotated = await rotate(bank, C, pca);
    const leadT = new Float32Array(m * M);
    const leadSq = new Float32Array(M);
    for (let b = 0; b < M; b++) {
      let s = 0;
      for (let c = 0; c < m; c++) {
        const v = rotated[b * C + c];
        leadT[c * M + b] = -2 * v;
        s += v * v;
      }
      leadSq[b] = s;
    }
    const nodes: NodeSpec[] = [
      { op: 'Sub', inputs: ['q', 'mean'], output: 'qc' },
      { op: 'MatMul', inputs: ['qc', 'axes'], output: 'qr' },
      { op: 'Slice', inputs: ['qr', 'zero', 'lead', 'one'], output: 'qm' },
      // lower bounds (without |q_m|², the same for a whole row) and the CANDIDATES + 1 smallest
      { op: 'Gemm', inputs: ['qm', 'lead_t', 'lead_sq'], output: 'part' },
      {
        op: 'TopK',
        inputs: ['part', 'k_bound'],
        output: ['part_k', 'bound_index'],
        attrs: { axis: 1, largest: 0, sorted: 1 },
      },
      { op: 'Mul', inputs: ['qm', 'qm'], output: 'qm2' },
      { op: 'ReduceSum', inputs: ['qm2', 'one'], output: 'qm_sq', attrs: { keepdims: 1 } },
      { op: 'Add', inputs: ['part_k', 'qm_sq'], output: 'bound' },
      { op: 'Slice', inputs: ['bound', 'cand', 'cand1', 'one'], output: 'next_bound' },
      { op: 'Slice', inputs: ['bound_index', 'zero', 'cand', 'one'], output: 'cand_index' },
      // exact squared distances of the candidates, on all components
      { op: 'Gather', inputs: ['rotated', 'cand_index'], output: 'cand_rows', attrs: { axis: 0 } },
      { op: 'Unsqueeze', inputs: ['qr', 'one'], output: 'qr3' },
      { op: 'Sub', inputs: ['cand_rows', 'qr3'], output: 'diff' },
      { op: 'Mul', inputs: ['diff', 'diff'], output: 'diff2' },
      { op: 'ReduceSum', inputs: ['diff2', 'two'], output: 'exact', attrs: { keepdims: 0 } },
      {
        op: 'TopK',
        inputs: ['exact', 'k_one'],
        output: ['best', 'best_at'],
        attrs: { axis: 1, largest: 0, sorted: 1 },
      },
      { op: 'GatherElements', inputs: ['cand_index', 'best_at'], output: 'best_index64', attrs: { axis: 1 } },
      { op: 'Cast', inputs: ['best_index64'], output: 'best_index', attrs: { to: 1 } },
    ];
    const model = encodeGraph(
      'patchcore-nearest-pruned',
      nodes,
      [vi('q', ['q', C])],
      [vi('best', ['q', 1]), vi('best_index', ['q', 1]), vi('next_bound', ['q', 1])],
      [
        float32Tensor('mean', [1, C], pca.mean),
        float32Tensor('axes', [C, C], pca.axes),
        float32Tensor('lead_t', [m, M], leadT),
        float32Tensor('lead_sq', [1, M], leadSq),
        float32Tensor('rotated', [M, C], rotated),
        int64Tensor('zero', [0]),
        int64Tensor('one', [1]),
        int64Tensor('two', [2]),
        int64Tensor('lead', [m]),
        int64Tensor('cand', [CANDIDATES]),
        int64Tensor('cand1', [CANDIDATES + 1]),
        int64Tensor('k_bound', [CANDIDATES + 1]),
        int64Tensor('k_one', [1]),
      ],
    );
    return new NearestSearch(await OnnxSession.create(model), full, C, M);
  }

  readonly k = 1;

  /** Distances and indices [Q] of the query rows [Q, C]; exact. */
  async run(queries: Float32Array): Promise<{ dist: Float32Array; index: Int32Array }> {
    const { C } = this;
    const Q = queries.length / C;
    const dist = new Float32Array(Q);
    const index = new Int32Array(Q);
    const uncertain: number[] = [];
    const rows = Math.max(1, Math.floor(PRUNED_BLOCK_VALUES / this.M));
    for (let start = 0; start < Q; start += rows) {
      const n = Math.min(rows, Q - start);
      const out = await this.session.run({
        q: { data: queries.subarray(start * C, (start + n) * C), dims: [n, C] },
      });
      const best = out.best.data;
      const next = out.next_bound.data;
      const at = out.best_index.data;
      for (let j = 0; j < n; j++) {
        if (next[j] >= best[j] * (1 + CERTAINTY) + 1e-6) {
          dist[start + j] = Math.sqrt(Math.max(0, best[j]));
          index[start + j] = at[j];
        } else uncertain.push(start + j);
      }
    }
    if (uncertain.length) {
      const rowsOf = new Float32Array(uncertain.length * C);
      uncertain.forEach((q, j) => rowsOf.set(queries.subarray(q * C, (q + 1) * C), j * C));
      const full = await this.full.run(rowsOf);
      uncertain.forEach((q, j) => {
        dist[q] = full.dist[j];
        index[q] = full.index[j];
      });
    }
    return { dist, index };
  }

  async release(): Promise<void> {
    await this.session.release();
    await this.full.release();
  }
}
