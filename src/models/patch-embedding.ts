/**
 * The patch embedding PatchCore and the classifier share: layer2 and layer3 of the backbone (strides 8
 * and 16) → each averaged over 3×3 neighbourhoods (stride 1, zero padding counted, as torch's
 * AvgPool2d(3, 1, 1)) → layer3 upsampled bilinearly (half-pixel centres, as
 * F.interpolate(align_corners=False)) to layer2's grid → concatenated → one row per patch [B·h·w, C],
 * C = channels of layer2 + layer3 (152 for EfficientNet-Lite0). As ONNX nodes (for the exported graphs)
 * and as a session (for kensa's own scoring).
 */
import type { FeatureMap } from '../backbone/backbone.js';
import { encodeGraph, float32Tensor, int64Tensor, valueInfo as vi, type NodeSpec } from '../onnx/graph.js';
import { OnnxSession } from '../onnx/runtime.js';

/** Input pixels per row of the embedding (layer2's stride). */
export const EMBEDDING_STRIDE = 8;

/** Values per patch row for a backbone's channels. */
export const embeddingDim = (channels: readonly [number, number, number]) => channels[1] + channels[2];

/** Embeddings [B·h·w, C] of a batch (h, w: the stride-8 grid). */
export class EmbedGraph {
  private constructor(private readonly session: OnnxSession) {}

  static async create(channels: [number, number, number]): Promise<EmbedGraph> {
    const [, c2, c3] = channels;
    const model = encodeGraph(
      'patch-embedding',
      embedNodes(),
      [vi('layer2', ['b', c2, 'h', 'w']), vi('layer3', ['b', c3, 'h3', 'w3'])],
      [vi('emb', ['n', c2 + c3])],
      embedInitializers(c2 + c3),
    );
    return new EmbedGraph(await OnnxSession.create(model));
  }

  async run(maps: readonly [FeatureMap, FeatureMap, FeatureMap]): Promise<Float32Array> {
    const out = await this.session.run({ layer2: maps[1], layer3: maps[2] }, ['emb']);
    return out.emb.data;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** layer2, layer3 → pooled, upsampled, concatenated → `emb` [B·h·w, C] (and `p2`, the pooled layer2). */
export function embedNodes(): NodeSpec[] {
  return [
    {
      op: 'AveragePool',
      inputs: ['layer2'],
      output: 'p2',
      attrs: { kernel_shape: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], count_include_pad: 1 },
    },
    {
      op: 'AveragePool',
      inputs: ['layer3'],
      output: 'p3',
      attrs: { kernel_shape: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], count_include_pad: 1 },
    },
    {
      op: 'Resize',
      inputs: ['p3', '', 'scales'],
      output: 'u3',
      attrs: { mode: 'linear', coordinate_transformation_mode: 'half_pixel' },
    },
    { op: 'Concat', inputs: ['p2', 'u3'], output: 'cat', attrs: { axis: 1 } },
    { op: 'Transpose', inputs: ['cat'], output: 'nhwc', attrs: { perm: [0, 2, 3, 1] } },
    { op: 'Reshape', inputs: ['nhwc', 'rows'], output: 'emb' },
  ];
}

export const embedInitializers = (C: number) => [
  float32Tensor('scales', [4], Float32Array.from([1, 1, 2, 2])),
  int64Tensor('rows', [-1, C]),
];

/**
 * Nodes that read the embedding's shapes from the pooled layer2 (`p2`): `n` (the batch), `grid_shape`
 * [n, h, w] and `flat_shape` [n, −1], with the small constants they and the methods' graphs use
 * (`zero`, `one`, `two`, `four`, `minus_one`).
 */
export function embeddingShapes(): { nodes: NodeSpec[]; initializers: ReturnType<typeof int64Tensor>[] } {
  return {
    nodes: [
      { op: 'Shape', inputs: ['p2'], output: 'p2_shape' },
      { op: 'Slice', inputs: ['p2_shape', 'zero', 'one'], output: 'n' },
      { op: 'Slice', inputs: ['p2_shape', 'two', 'four'], output: 'hw' },
      { op: 'Concat', inputs: ['n', 'hw'], output: 'grid_shape', attrs: { axis: 0 } },
      { op: 'Concat', inputs: ['n', 'minus_one'], output: 'flat_shape', attrs: { axis: 0 } },
    ],
    initializers: [
      int64Tensor('zero', [0]),
      int64Tensor('one', [1]),
      int64Tensor('two', [2]),
      int64Tensor('four', [4]),
      int64Tensor('minus_one', [-1]),
    ],
  };
}
