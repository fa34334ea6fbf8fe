/**
 * kensa's public API. Everything the command line does is available here.
 *
 *   import { Backbone } from 'kensa';
 *   const backbone = await Backbone.load('efficientnet_lite0');
 *   const [s4, s8, s16] = await backbone.extract(input, batch, 224, 224);
 */
export { Backbone, IMAGENET_MEAN, IMAGENET_STD } from './backbone/backbone.js';
export type { BackboneOptions, FeatureMap } from './backbone/backbone.js';
export { readCheckpoint, parseCheckpoint } from './backbone/checkpoint.js';
export type { StateDict } from './backbone/checkpoint.js';
export { buildBackboneGraph, FEATURE_OUTPUTS, FEATURE_STRIDES } from './backbone/graph.js';
export { BACKBONES, DEFAULT_BACKBONE, backboneNames, getBackbone } from './backbone/registry.js';
export type { BackboneSpec, WeightSource } from './backbone/registry.js';
export { defaultCacheDir, resolveWeights } from './backbone/weights.js';
export type { ResolveOptions, ResolvedWeights } from './backbone/weights.js';
export { parseSafetensors, readSafetensors, serializeSafetensors } from './io/safetensors.js';
export { writeFileAtomic } from './io/atomic.js';
export { KensaError } from './util/errors.js';
export type { KensaErrorCode } from './util/errors.js';
export type { Tensor, DType } from './util/tensor.js';
export type { ProgressCallback, ProgressEvent } from './util/progress.js';
