/** Builds a backbone's ONNX graph from its architecture and a state_dict. */
import type { StateDict } from './checkpoint.js';
import { GraphBuilder, Weights } from './graph-builder.js';
import type { BackboneSpec } from './registry.js';
import { buildResNet } from './architectures/resnet.js';
import { buildEfficientNetLite } from './architectures/efficientnet-lite.js';
import { KensaError } from '../util/errors.js';

/** Output names of every feature graph, at strides 4, 8 and 16. */
export const FEATURE_OUTPUTS = ['layer1', 'layer2', 'layer3'] as const;
export const FEATURE_STRIDES = [4, 8, 16] as const;
export const INPUT_NAME = 'input';

export interface GraphOptions {
  /** Also output the classifier's logits (EfficientNet-Lite only); used to check the whole network. */
  head?: boolean;
}

export function buildBackboneGraph(
  architecture: BackboneSpec['architecture'],
  name: string,
  stateDict: StateDict,
  options: GraphOptions = {},
): Uint8Array {
  const w = new Weights(stateDict, name);
  const g = new GraphBuilder(w);
  const input = g.input(INPUT_NAME, ['batch', 3, 'height', 'width']);
  let features: [string, string, string];
  if (architecture.family === 'resnet') {
    if (options.head)
      throw new KensaError(
        'E_ARGUMENT',
        `the classifier head is available for EfficientNet-Lite only, not ${name}`,
      );
    features = buildResNet(g, w, architecture, input);
  } else {
    const out = buildEfficientNetLite(g, w, architecture, input, options.head ?? false);
    features = out.features;
    if (out.logits) g.output('logits', out.logits, ['batch', 'classes']);
  }
  features.forEach((f, i) =>
    g.output(FEATURE_OUTPUTS[i], f, ['batch', `c${i + 1}`, `h${i + 1}`, `w${i + 1}`]),
  );
  return g.encode(name);
}
