/**
 * EfficientNet-Lite as the PyPI package `efficientnet_lite_pytorch` builds it (lukemelas' EfficientNet-PyTorch
 * with the Lite settings): no squeeze-excitation, ReLU6, stem and head not scaled, batch-norm ε = 1e-3, and
 * TensorFlow-style "same" padding computed once for the resolution the weights were trained at
 * (Conv2dStaticSamePadding). That padding is part of the network: for lite2 (260 px) it is symmetric where
 * lite0 (224 px) pads only bottom/right, whatever the input size. Channels are read from the weights.
 */
import { KensaError } from '../../util/errors.js';
import type { EfficientNetLiteArchitecture } from '../registry.js';
import type { GraphBuilder, Weights } from '../graph-builder.js';

const EPS = 1e-3;

/** The seven stages: repeats, kernel, stride, expand ratio (block strings r1_k3_s11_e1_i32_o16 ...). */
const STAGES: [number, number, number, number][] = [
  [1, 3, 1, 1],
  [2, 3, 2, 6],
  [2, 5, 2, 6],
  [3, 3, 2, 6],
  [3, 5, 1, 6],
  [4, 5, 2, 6],
  [1, 3, 1, 6],
];

export interface LiteBlock {
  index: number;
  kernel: number;
  stride: number;
  expand: number;
  /** Static padding [top, left, bottom, right] of the depthwise convolution. */
  pads: [number, number, number, number];
  /** Network stride after this block. */
  outStride: number;
}

/** TF "same" padding for a given input size, as Conv2dStaticSamePadding computes it. */
export function samePadding(size: number, kernel: number, stride: number): [number, number, number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + kernel - size, 0);
  const a = Math.floor(total / 2);
  return [a, a, total - a, total - a];
}

/** Lays out the blocks: repeats scaled by depth (first and last stage fixed), padding from the native size. */
export function liteBlocks(arch: EfficientNetLiteArchitecture): LiteBlock[] {
  const blocks: LiteBlock[] = [];
  let size = Math.ceil(arch.imageSize / 2);
  let netStride = 2;
  STAGES.forEach(([repeats, kernel, stride, expand], stage) => {
    const fixed = stage === 0 || stage === STAGES.length - 1;
    const n = fixed ? repeats : Math.ceil(arch.depth * repeats);
    for (let r = 0; r < n; r++) {
      const s = r === 0 ? stride : 1;
      const pads = samePadding(size, kernel, s);
      size = Math.ceil(size / s);
      netStride *= s;
      blocks.push({ index: blocks.length, kernel, stride: s, expand, pads, outStride: netStride });
    }
  });
  return blocks;
}

function mbConv(g: GraphBuilder, w: Weights, x: string, b: LiteBlock): string {
  const p = `_blocks.${b.index}`;
  let y = x;
  if (b.expand !== 1) y = g.relu6(g.convBn(y, `${p}._expand_conv`, `${p}._bn0`, EPS));
  const dw = w.tensor(`${p}._depthwise_conv.weight`, 4);
  y = g.relu6(
    g.convBn(y, `${p}._depthwise_conv`, `${p}._bn1`, EPS, {
      stride: b.stride,
      pads: b.pads,
      group: dw.shape[0],
    }),
  );
  y = g.convBn(y, `${p}._project_conv`, `${p}._bn2`, EPS);
  const inC = b.expand !== 1 ? w.tensor(`${p}._expand_conv.weight`, 4).shape[1] : dw.shape[0];
  const outC = w.tensor(`${p}._project_conv.weight`, 4).shape[0];
  return b.stride === 1 && inC === outC ? g.node('Add', [y, x]) : y;
}

export interface LiteOutputs {
  features: [string, string, string];
  /** Classifier logits, when asked for (the whole network). */
  logits?: string;
}

export function buildEfficientNetLite(
  g: GraphBuilder,
  w: Weights,
  arch: EfficientNetLiteArchitecture,
  input: string,
  withHead: boolean,
): LiteOutputs {
  const blocks = liteBlocks(arch);
  const lastAt = (stride: number) => {
    const i = blocks.map((b) => b.outStride).lastIndexOf(stride);
    if (i < 0) throw new KensaError('E_SHAPE', `EfficientNet-Lite layout has no block at stride ${stride}`);
    return i;
  };
  const taps = [lastAt(4), lastAt(8), lastAt(16)];
  const end = withHead ? blocks.length - 1 : taps[2];
  let x = g.relu6(
    g.convBn(input, '_conv_stem', '_bn0', EPS, { stride: 2, pads: samePadding(arch.imageSize, 3, 2) }),
  );
  const features: string[] = [];
  for (const b of blocks.slice(0, end + 1)) {
    x = mbConv(g, w, x, b);
    if (taps.includes(b.index)) features.push(x);
  }
  let logits: string | undefined;
  if (withHead) {
    x = g.relu6(g.convBn(x, '_conv_head', '_bn1', EPS));
    x = g.node('Flatten', [g.node('GlobalAveragePool', [x])], { axis: 1 });
    logits = g.linear(x, '_fc');
  }
  return { features: features as [string, string, string], logits };
}
