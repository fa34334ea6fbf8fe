/**
 * PaDiM's per-batch work as ONNX graphs on onnxruntime, built once per model:
 *
 *   embed:     layer1..3 → [P, B, d] patch embeddings minus a shift (for fitting), and their sum over B
 *   distance:  layer1..3 → embeddings → Mahalanobis distance of every patch → [B, h, w] patch scores
 *
 * The embedding (coarser maps repeated over the stride-4 grid, a fixed channel subset) is a channels-last
 * Transpose, a broadcast Expand, a Concat and (for a subset) a Gather, so no feature map is re-arranged
 * in JavaScript.
 */
import type { FeatureMap } from '../../backbone/backbone.js';
import {
  DataType,
  encodeGraph,
  float32Tensor,
  float64Tensor,
  int64Tensor as i64,
  valueInfo as vi,
  type NodeSpec as Node,
} from '../../onnx/graph.js';
import { OnnxSession, type RunOutput, type RunOutput64 } from '../../onnx/runtime.js';
import type { MethodGraph, PatchScores } from '../method.js';
import type { EmbeddingLayout } from './embedding.js';

/**
 * Nodes from the three feature maps to embeddings x: [P, B, d]. Channels-last first (each map to NHWC),
 * so that the repeat, the concatenation and the final move to position-major all copy whole channel rows.
 */
function embeddingNodes(layout: EmbeddingLayout): Node[] {
  const all = usesAllChannels(layout);
  return [
    { op: 'Transpose', inputs: ['layer1'], output: 'n1', attrs: { perm: [0, 2, 3, 1] } },
    { op: 'Transpose', inputs: ['layer2'], output: 'n2', attrs: { perm: [0, 2, 3, 1] } },
    { op: 'Transpose', inputs: ['layer3'], output: 'n3', attrs: { perm: [0, 2, 3, 1] } },
    // nearest repeat ×2 / ×4 as a broadcast: [B, h, 1, w, 1, C] → [B, h, s, w, s, C] → [B, sh, sw, C]
    { op: 'Reshape', inputs: ['n2', 'shape_u2'], output: 'u2' },
    { op: 'Expand', inputs: ['u2', 'shape_e2'], output: 'e2' },
    { op: 'Reshape', inputs: ['e2', 'shape_r2'], output: 'up2' },
    { op: 'Reshape', inputs: ['n3', 'shape_u4'], output: 'u3' },
    { op: 'Expand', inputs: ['u3', 'shape_e4'], output: 'e3' },
    { op: 'Reshape', inputs: ['e3', 'shape_r4'], output: 'up3' },
    { op: 'Concat', inputs: ['n1', 'up2', 'up3'], output: all ? 'sel' : 'cat', attrs: { axis: 3 } },
    ...(all ? [] : [{ op: 'Gather', inputs: ['cat', 'channel_index'], output: 'sel', attrs: { axis: 3 } }]),
    { op: 'Reshape', inputs: ['sel', 'shape_bpd'], output: 'bpd' },
    { op: 'Transpose', inputs: ['bpd'], output: 'x', attrs: { perm: [1, 0, 2] } },
  ];
}

const usesAllChannels = (layout: EmbeddingLayout) =>
  layout.index.length === layout.channels[0] + layout.channels[1] + layout.channels[2];

function embeddingInitializers(layout: EmbeddingLayout) {
  return [
    ...[2, 4].flatMap((k, i) => {
      const [h, w, c] = [layout.height / k, layout.width / k, layout.channels[i + 1]];
      return [
        i64(`shape_u${k}`, [-1, h, 1, w, 1, c]),
        i64(`shape_e${k}`, [1, 1, k, 1, k, 1]),
        i64(`shape_r${k}`, [-1, layout.height, layout.width, c]),
      ];
    }),
    ...(usesAllChannels(layout) ? [] : [i64('channel_index', Array.from(layout.index))]),
    i64('shape_bpd', [0, -1, layout.index.length]),
  ];
}

function featureInputs(layout: EmbeddingLayout) {
  const [c1, c2, c3] = layout.channels;
  const { height: h, width: w } = layout;
  return [
    vi('layer1', ['b', c1, h, w]),
    vi('layer2', ['b', c2, h / 2, w / 2]),
    vi('layer3', ['b', c3, h / 4, w / 4]),
  ];
}

const feeds = (maps: readonly [FeatureMap, FeatureMap, FeatureMap]) => ({
  layer1: maps[0],
  layer2: maps[1],
  layer3: maps[2],
});

/** Embeddings for fitting: x − shift, [P, B, d], and Σ_B (x − shift), [P, d]. */
export class EmbedGraph {
  private constructor(
    private readonly session: OnnxSession,
    private readonly P: number,
    private readonly d: number,
  ) {}

  static async create(layout: EmbeddingLayout): Promise<EmbedGraph> {
    const P = layout.height * layout.width;
    const d = layout.index.length;
    const nodes: Node[] = [
      ...embeddingNodes(layout),
      { op: 'Sub', inputs: ['x', 'shift'], output: 'centred' },
      { op: 'ReduceSum', inputs: ['centred', 'axis1'], output: 'sum', attrs: { keepdims: 0 } },
    ];
    const model = encodeGraph(
      'padim',
      nodes,
      [...featureInputs(layout), vi('shift', [P, 1, d])],
      [vi('centred', [P, 'b', d]), vi('sum', [P, d])],
      [...embeddingInitializers(layout), i64('axis1', [1])],
    );
    return new EmbedGraph(await OnnxSession.create(model), P, d);
  }

  async run(
    maps: readonly [FeatureMap, FeatureMap, FeatureMap],
    shift: Float32Array,
  ): Promise<{ x: Float32Array; sum: Float32Array }> {
    const out = await this.session.run({ ...feeds(maps), shift: { data: shift, dims: [this.P, 1, this.d] } });
    return { x: out.centred.data, sum: out.sum.data };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** Feature maps (+ `mean` [P, 1, d], `precision` [P, d, d]) → Mahalanobis distances `dist` [B, h, w]. */
function distanceNodes(layout: EmbeddingLayout): Node[] {
  return [
    ...embeddingNodes(layout),
    { op: 'Sub', inputs: ['x', 'mean'], output: 'diff' },
    { op: 'MatMul', inputs: ['diff', 'precision'], output: 'y' },
    { op: 'Mul', inputs: ['y', 'diff'], output: 'prod' },
    { op: 'ReduceSum', inputs: ['prod', 'axis2'], output: 'm2', attrs: { keepdims: 0 } },
    { op: 'Relu', inputs: ['m2'], output: 'm2pos' },
    { op: 'Sqrt', inputs: ['m2pos'], output: 'dist_pb' },
    { op: 'Transpose', inputs: ['dist_pb'], output: 'dist_bp', attrs: { perm: [1, 0] } },
    { op: 'Reshape', inputs: ['dist_bp', 'shape_grid'], output: 'dist' },
  ];
}

const distanceInitializers = (layout: EmbeddingLayout) => [
  ...embeddingInitializers(layout),
  i64('axis2', [2]),
  i64('shape_grid', [-1, layout.height, layout.width]),
];

/** The distance computation for kensa export: the statistics become initializers of the graph. */
export function distanceExportGraph(
  layout: EmbeddingLayout,
  mean: Float32Array,
  precision: Float32Array,
): MethodGraph {
  const P = layout.height * layout.width;
  const d = layout.index.length;
  return {
    nodes: distanceNodes(layout),
    initializers: [
      ...distanceInitializers(layout),
      float32Tensor('mean', [P, 1, d], mean),
      float32Tensor('precision', [P, d, d], precision),
    ],
    grid: 'dist',
  };
}

/** From feature maps to the Mahalanobis distance of every patch [B, h, w], with the model's statistics. */
export class DistanceGraph {
  private constructor(
    private readonly session: OnnxSession,
    private readonly layout: EmbeddingLayout,
    private readonly stats: Record<'mean' | 'precision', RunOutput>,
  ) {}

  static async create(
    layout: EmbeddingLayout,
    mean: Float32Array,
    precision: Float32Array,
  ): Promise<DistanceGraph> {
    const P = layout.height * layout.width;
    const d = layout.index.length;
    // mean and precision are inputs, not initializers: no copy of hundreds of megabytes into the graph
    const model = encodeGraph(
      'padim',
      distanceNodes(layout),
      [...featureInputs(layout), vi('mean', [P, 1, d]), vi('precision', [P, d, d])],
      [vi('dist', ['b', layout.height, layout.width])],
      distanceInitializers(layout),
    );
    return new DistanceGraph(await OnnxSession.create(model), layout, {
      mean: { data: mean, dims: [P, 1, d] },
      precision: { data: precision, dims: [P, d, d] },
    });
  }

  async run(maps: readonly [FeatureMap, FeatureMap, FeatureMap]): Promise<PatchScores> {
    const out = await this.session.run({ ...feeds(maps), ...this.stats }, ['dist']);
    return {
      grid: out.dist.data,
      dims: [maps[0].dims[0], this.layout.height, this.layout.width],
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Leave-one-out distances of training images (model.ts, LeaveOneOutScorer): the Mahalanobis form q with
 * the statistics (μ, A⁻¹) of all n images, then d = k·√(q / (1 − c·q)), and c·q itself (`cq`, [P, B]),
 * by which the caller tells whether this graph's precision was enough. The subtraction 1 − c·q is of
 * nearly equal numbers where an image stands alone in some direction (few images for the channels): a
 * relative error ε in q becomes ε·c·q / (1 − c·q) in it. With float32 statistics the graph computes in
 * float32 (the precision of every other PaDiM score; four times faster than float64 on this CPU), right
 * where c·q stays below FLOAT32_CQ; with float64 statistics, in float64, for the images where it does not.
 */
export class LeaveOneOutGraph {
  private constructor(
    private readonly session: OnnxSession,
    private readonly layout: EmbeddingLayout,
    private readonly stats: Record<'mean' | 'precision', RunOutput | RunOutput64>,
  ) {}

  static async create(
    layout: EmbeddingLayout,
    mean: Float32Array | Float64Array,
    precision: Float32Array | Float64Array,
    n: number,
  ): Promise<LeaveOneOutGraph> {
    const P = layout.height * layout.width;
    const d = layout.index.length;
    const k = n / (n - 1);
    const c = n / ((n - 1) * (n - 2));
    const double = precision instanceof Float64Array;
    const type = double ? DataType.DOUBLE : DataType.FLOAT;
    // the input's float32 values into the graph's type, and its float64 results back to float32
    const convert = (input: string, output: string, to: number): Node =>
      double
        ? { op: 'Cast', inputs: [input], output, attrs: { to } }
        : { op: 'Identity', inputs: [input], output };
    const scalar = (name: string, v: number) =>
      double
        ? float64Tensor(name, [], Float64Array.from([v]))
        : float32Tensor(name, [], Float32Array.from([v]));
    const model = encodeGraph(
      'padim-leave-one-out',
      [
        ...embeddingNodes(layout),
        convert('x', 'xt', DataType.DOUBLE),
        { op: 'Sub', inputs: ['xt', 'mean'], output: 'diff' },
        { op: 'MatMul', inputs: ['diff', 'precision'], output: 'y' },
        { op: 'Mul', inputs: ['y', 'diff'], output: 'prod' },
        { op: 'ReduceSum', inputs: ['prod', 'axis2'], output: 'q0', attrs: { keepdims: 0 } },
        { op: 'Relu', inputs: ['q0'], output: 'q' },
        // 1 − c·q > 0 holds exactly (the model without the image is positive definite); floored
        { op: 'Mul', inputs: ['q', 'c'], output: 'cqt' },
        { op: 'Sub', inputs: ['one', 'cqt'], output: 't0' },
        { op: 'Max', inputs: ['t0', 'floor'], output: 't' },
        { op: 'Div', inputs: ['q', 't'], output: 'ratio' },
        { op: 'Mul', inputs: ['ratio', 'k2'], output: 'd2' },
        { op: 'Sqrt', inputs: ['d2'], output: 'dt' },
        convert('dt', 'dist_pb', DataType.FLOAT),
        convert('cqt', 'cq', DataType.FLOAT),
        { op: 'Transpose', inputs: ['dist_pb'], output: 'dist_bp', attrs: { perm: [1, 0] } },
        { op: 'Reshape', inputs: ['dist_bp', 'shape_grid'], output: 'dist' },
      ],
      [...featureInputs(layout), vi('mean', [P, 1, d], type), vi('precision', [P, d, d], type)],
      [vi('dist', ['b', layout.height, layout.width]), vi('cq', [P, 'b'])],
      [
        ...distanceInitializers(layout),
        scalar('one', 1),
        scalar('c', c),
        scalar('k2', k * k),
        scalar('floor', 1e-12),
      ],
    );
    return new LeaveOneOutGraph(await OnnxSession.create(model), layout, {
      mean: { data: mean, dims: [P, 1, d] } as RunOutput | RunOutput64,
      precision: { data: precision, dims: [P, d, d] } as RunOutput | RunOutput64,
    });
  }

  /** The distances of a batch, and per batch element the largest c·q of its patches. */
  async run(
    maps: readonly [FeatureMap, FeatureMap, FeatureMap],
  ): Promise<{ scores: PatchScores; cq: Float32Array }> {
    const B = maps[0].dims[0];
    const out = await this.session.run({ ...feeds(maps), ...this.stats }, ['dist', 'cq']);
    const cq = new Float32Array(B);
    const all = out.cq.data;
    for (let i = 0; i < all.length; i++) cq[i % B] = Math.max(cq[i % B], all[i]);
    return { scores: { grid: out.dist.data, dims: [B, this.layout.height, this.layout.width] }, cq };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
