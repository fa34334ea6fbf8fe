/**
 * kensa's public API. Everything the command line does is available here.
 *
 *   import { train, test, predict, loadModel } from 'kensa';
 *   await train({ data: 'my-part', out: 'part.kensa' });
 *   const { predictions } = await predict({ model: 'part.kensa', inputs: ['today/'], out: 'results' });
 */
// the workflow
export {
  train,
  splitValidation,
  assignFolds,
  DEFAULT_METHOD,
  DEFAULT_TILED_METHOD,
  defaultMethod,
} from './pipeline/verbs/train.js';
export { KENSA_VERSION } from './version.js';
export type { TrainOptions, TrainResult } from './pipeline/verbs/train.js';
export { update, previousModelPath } from './pipeline/verbs/update.js';
export type { UpdateOptions, UpdateResult } from './pipeline/verbs/update.js';
export { test, test as evaluate } from './pipeline/verbs/test.js';
export type { TestOptions, TestMetrics, TestImageResult } from './pipeline/verbs/test.js';
export { predict } from './pipeline/verbs/predict.js';
export { watch, WATCH_JOURNAL } from './pipeline/verbs/watch.js';
export type { WatchOptions, WatchSummary } from './pipeline/verbs/watch.js';
export type { PredictOptions, Prediction } from './pipeline/verbs/predict.js';
export { decide, resolveThreshold, THRESHOLD_CHOICES } from './pipeline/contracts/decisions.js';
export type { Decision, DefectRegion, ThresholdChoice } from './pipeline/contracts/decisions.js';
export { Inspector } from './pipeline/engine/inspector.js';
export type { ScoredImage } from './pipeline/engine/inspector.js';
export {
  loadModel,
  loadModelMetadata,
  parseModel,
  saveModel,
  serializeModel,
  updateThresholds,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
} from './pipeline/contracts/model-file.js';
export type {
  KensaModel,
  ModelMetadata,
  Thresholds,
  CalibrationSummary,
} from './pipeline/contracts/model-file.js';
// the supervised classifier
// (a classifier is a kensa model: loadModel reads it, test, predict, serve and export take it)
export {
  trainClassifier,
  testClassifier,
  predictClassifier,
  classifierRecord,
} from './pipeline/verbs/classify.js';
export type { ClassifyTrainOptions, ClassifyTrainResult } from './pipeline/verbs/classify.js';
export type { ClassifierState, ClassifierRecord } from './models/classifier/method.js';
export { learningCurves } from './report/figures.js';
// the service and the exports
export { InspectionService, SERVE_DEFAULTS } from './serve/server.js';
export type { ServiceOptions, InspectResponse } from './serve/server.js';
export { MicroBatcher } from './serve/batcher.js';
export { exportModel, tritonConfig, EXPORT_FORMATS } from './export/export.js';
export type { ExportModelOptions, ExportFormat } from './export/export.js';
export { exportOnnx } from './export/onnx.js';
export type { ExportInfo } from './export/onnx.js';
// methods
export { METHODS, METHOD_NAMES, UNSUPERVISED_METHODS, getMethod } from './models/registry.js';
export type { Method, MethodGraph, Scorer, Fitter, MethodState } from './models/method.js';
// data and images
export { openDataset, collectImages, IMAGE_EXTENSIONS } from './data/dataset.js';
export type { Dataset, ImageItem } from './data/dataset.js';
export { makeSyntheticDataset, makeSurfaceDataset } from './data/synthetic.js';
export { loadImage, loadMask } from './image/load.js';
export type { Preprocess, TileSettings } from './image/preprocess.js';
// metrics
export { auroc, averagePrecision, bestF1, confusion, rocCurve, prCurve } from './metrics/classification.js';
export { aupro, pixelMetrics } from './metrics/aupro.js';
export { PixelMetricsStream } from './metrics/pixel-stream.js';
// backbones and weights
export { Backbone, IMAGENET_MEAN, IMAGENET_STD } from './backbone/backbone.js';
export type { BackboneOptions, FeatureMap } from './backbone/backbone.js';
export { readCheckpoint, parseCheckpoint } from './backbone/checkpoint.js';
export type { StateDict } from './backbone/checkpoint.js';
export { buildBackboneGraph, FEATURE_OUTPUTS, FEATURE_STRIDES } from './backbone/graph.js';
export { BACKBONES, DEFAULT_BACKBONE, backboneNames, getBackbone } from './backbone/registry.js';
export type { BackboneSpec, WeightSource } from './backbone/registry.js';
export { defaultCacheDir, resolveWeights } from './backbone/weights.js';
export type { ResolveOptions, ResolvedWeights } from './backbone/weights.js';
// files
export {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
} from './io/safetensors.js';
export { writeFileAtomic } from './io/atomic.js';
export { KensaError } from './util/errors.js';
export type { KensaErrorCode } from './util/errors.js';
export type { Tensor, DType } from './util/tensor.js';
export type { ProgressCallback, ProgressEvent } from './util/progress.js';
