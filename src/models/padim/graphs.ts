/**
 * PaDiM's per-batch work as ONNX graphs on onnxruntime, built once per model:
 *
 *   embed:  layer1..3 → [P, B, d] patch embeddings minus a shift (for fitting), and their sum over B
 *   score:  layer1..3 → embeddings → Mahalanobis distances → A·D·Aᵀ (upsampling + Gaussian smoothing)
 *           → anomaly maps [B, S, S] and image scores (their maxima) [B]
 *
 * The embedding (coarser maps repeated over the stride-4 grid, a fixed channel subset) is a channels-last
 * Transpose, a broadcast Expand, a Concat and (for a subset) a Gather, so no feature map is re-arranged
 * in JavaScript.
 */
import type { FeatureMap } from '../../backbone/backbone.js';
import {
  encodeGraph,
  float32Tensor as f32,
  int64Tensor as i64,
  valueInfo as vi,
  type NodeSpec as Node,
} from '../../backbone/onnx-graph.js';
import { OnnxSession, type RunOutput } from '../../backbone/runtime.js';
import { upsampleSmoothMatrix } from '../../postprocess/smoothing-matrix.js';
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

/** From feature maps to anomaly maps [B, S, S] and image scores [B], with the model's statistics inside. */
export class ScoreGraph {
  private constructor(
    private readonly session: OnnxSession,
    readonly size: number,
    private readonly stats: Record<'mean' | 'precision', RunOutput>,
  ) {}

  static async create(
    layout: EmbeddingLayout,
    mean: Float32Array,
    precision: Float32Array,
    size: number,
    sigma: number,
  ): Promise<ScoreGraph> {
    const P = layout.height * layout.width;
    const d = layout.index.length;
    const h = layout.height;
    const A = upsampleSmoothMatrix(h, size, sigma);
    const At = new Float32Array(h * size);
    for (let i = 0; i < size; i++) for (let j = 0; j < h; j++) At[j * size + i] = A[i * h + j];
    const nodes: Node[] = [
      ...embeddingNodes(layout),
      { op: 'Sub', inputs: ['x', 'mean'], output: 'diff' },
      { op: 'MatMul', inputs: ['diff', 'precision'], output: 'y' },
      { op: 'Mul', inputs: ['y', 'diff'], output: 'prod' },
      { op: 'ReduceSum', inputs: ['prod', 'axis2'], output: 'm2', attrs: { keepdims: 0 } },
      { op: 'Relu', inputs: ['m2'], output: 'm2pos' },
      { op: 'Sqrt', inputs: ['m2pos'], output: 'dist' },
      { op: 'Transpose', inputs: ['dist'], output: 'dist_bp', attrs: { perm: [1, 0] } },
      { op: 'Reshape', inputs: ['dist_bp', 'shape_grid'], output: 'grid' },
      { op: 'MatMul', inputs: ['A', 'grid'], output: 'rows' },
      { op: 'MatMul', inputs: ['rows', 'At'], output: 'map' },
      { op: 'ReduceMax', inputs: ['map'], output: 'score', attrs: { axes: [1, 2], keepdims: 0 } },
    ];
    // mean and precision are inputs, not initializers: no copy of hundreds of megabytes into the graph
    const model = encodeGraph(
      'padim',
      nodes,
      [...featureInputs(layout), vi('mean', [P, 1, d]), vi('precision', [P, d, d])],
      [vi('map', ['b', size, size]), vi('score', ['b'])],
      [
        ...embeddingInitializers(layout),
        f32('A', [size, h], A),
        f32('At', [h, size], At),
        i64('axis2', [2]),
        i64('shape_grid', [-1, layout.height, layout.width]),
      ],
    );
    return new ScoreGraph(await OnnxSession.create(model), size, {
      mean: { data: mean, dims: [P, 1, d] },
      precision: { data: precision, dims: [P, d, d] },
    });
  }

  /** One anomaly map (S·S values) and score per image of the batch. */
  async run(
    maps: readonly [FeatureMap, FeatureMap, FeatureMap],
  ): Promise<{ maps: Float32Array[]; scores: number[] }> {
    const out = await this.session.run({ ...feeds(maps), ...this.stats });
    const S2 = this.size * this.size;
    const B = maps[0].dims[0];
    return {
      maps: Array.from({ length: B }, (_, b) => out.map.data.slice(b * S2, (b + 1) * S2)),
      scores: Array.from(out.score.data),
    };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
