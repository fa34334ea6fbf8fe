/**
 * torchvision ResNet (resnet18: BasicBlock; wide_resnet50_2: Bottleneck with doubled inner width),
 * truncated after layer3, with torchvision's state_dict names. Channel counts are read from the weights,
 * so reduced-width test networks use the same code.
 */
import type { ResNetArchitecture } from '../registry.js';
import type { GraphBuilder, Weights } from '../graph-builder.js';

const EPS = 1e-5;
const same3x3: [number, number, number, number] = [1, 1, 1, 1];

function basicBlock(g: GraphBuilder, x: string, p: string, stride: number, w: Weights): string {
  let y = g.relu(g.convBn(x, `${p}.conv1`, `${p}.bn1`, EPS, { stride, pads: same3x3 }));
  y = g.convBn(y, `${p}.conv2`, `${p}.bn2`, EPS, { pads: same3x3 });
  const identity = w.has(`${p}.downsample.0.weight`)
    ? g.convBn(x, `${p}.downsample.0`, `${p}.downsample.1`, EPS, { stride })
    : x;
  return g.relu(g.node('Add', [y, identity]));
}

function bottleneck(g: GraphBuilder, x: string, p: string, stride: number, w: Weights): string {
  let y = g.relu(g.convBn(x, `${p}.conv1`, `${p}.bn1`, EPS));
  y = g.relu(g.convBn(y, `${p}.conv2`, `${p}.bn2`, EPS, { stride, pads: same3x3 }));
  y = g.convBn(y, `${p}.conv3`, `${p}.bn3`, EPS);
  const identity = w.has(`${p}.downsample.0.weight`)
    ? g.convBn(x, `${p}.downsample.0`, `${p}.downsample.1`, EPS, { stride })
    : x;
  return g.relu(g.node('Add', [y, identity]));
}

/** Returns the outputs of layer1, layer2 and layer3 (strides 4, 8, 16). */
export function buildResNet(
  g: GraphBuilder,
  w: Weights,
  arch: ResNetArchitecture,
  input: string,
): [string, string, string] {
  let x = g.relu(g.convBn(input, 'conv1', 'bn1', EPS, { stride: 2, pads: [3, 3, 3, 3] }));
  x = g.node('MaxPool', [x], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  const block = arch.block === 'basic' ? basicBlock : bottleneck;
  const outs: string[] = [];
  arch.layers.forEach((count, li) => {
    for (let b = 0; b < count; b++) x = block(g, x, `layer${li + 1}.${b}`, li > 0 && b === 0 ? 2 : 1, w);
    outs.push(x);
  });
  return outs as [string, string, string];
}
