/**
 * A trained model as one self-contained ONNX graph — the computation kensa predict runs, not a copy of
 * it: the same backbone graph builder, the method's own scoring nodes (Method.exportGraph) and the map
 * step as nodes (postprocess/anomaly-map.ts), joined here.
 *
 *   image   uint8 [N, H, W, 3]  RGB, at the model's input size (the graph normalises with ImageNet's
 *                               mean and std, as image/load.ts does)
 *   → anomaly_map float32 [N, H, W]   the map at the input size (kensa's map before it is placed on the
 *                                      original image)
 *   → score       float32 [N]         the image score (PatchCore: anomalib's re-weighted peak; PaDiM: the
 *                                      map's maximum); NG when score > threshold
 *
 * H and W are fixed where the model fixes them (PaDiM's grid; --square, --resize/--crop) and free
 * otherwise (aspect kept, --scale): the caller computes them from the image's size with the rule stored
 * in the metadata (`kensa.preprocess`, the same `geometry()` kensa uses) and resizes the image to them.
 * Tiled models are refused: their tiles are scored separately and stitched before the map step.
 *
 * Metadata (ONNX metadata_props): `kensa` (JSON: version, method, backbone, preprocess, map settings,
 * thresholds and the default one, the colour range of the heat map, the input and output names),
 * plus `kensa_version`, `method`, `thresholds`, `preprocess` as their own keys for quick reading.
 */
import { backboneGraph } from '../backbone/backbone.js';
import { FEATURE_OUTPUTS, INPUT_NAME } from '../backbone/graph.js';
import { IMAGENET_MEAN, IMAGENET_STD, fixedInputSize } from '../image/preprocess.js';
import { getMethod } from '../models/registry.js';
import {
  DataType,
  encodeModel,
  float32Tensor,
  nodeProto,
  onnx,
  valueInfo,
  type NodeProto,
  type NodeSpec,
  type TensorProto,
} from '../onnx/graph.js';
import { checkWeights } from '../pipeline/inspector.js';
import { resolveThreshold, type ThresholdChoice } from '../pipeline/decisions.js';
import type { KensaModel } from '../pipeline/model-file.js';
import { mapStepNodes } from '../postprocess/anomaly-map.js';
import { KensaError } from '../util/errors.js';

export const EXPORT_INPUT = 'image';
export const EXPORT_OUTPUTS = ['anomaly_map', 'score'] as const;

export interface ExportOptions {
  weights?: string;
  cacheDir?: string;
  /** The threshold recorded as the default (as kensa predict chooses it). */
  threshold?: ThresholdChoice;
}

/** What the metadata says about the graph (also written next to the exports as kensa.json). */
export interface ExportInfo {
  format: 'kensa-onnx';
  kensa_version: string;
  method: string;
  backbone: string;
  preprocess: KensaModel['meta']['preprocess'];
  map: KensaModel['meta']['map'];
  thresholds: KensaModel['meta']['thresholds'];
  threshold: { name: string; value: number };
  display: [number, number];
  input: {
    name: string;
    type: 'uint8';
    layout: 'NHWC';
    channels: 'RGB';
    height: number | null;
    width: number | null;
  };
  outputs: { anomaly_map: string; score: string };
}

/** Renames a part's values, keeping those it shares with the rest of the graph. */
function prefixed(prefix: string, keep: ReadonlySet<string>) {
  return (name: string) => (name === '' || keep.has(name) ? name : `${prefix}${name}`);
}

function renameSpecs(nodes: NodeSpec[], inits: TensorProto[], rename: (n: string) => string): NodeProto[] {
  for (const t of inits) t.name = rename(t.name);
  return nodes.map((n) =>
    nodeProto({
      ...n,
      inputs: n.inputs.map(rename),
      output: typeof n.output === 'string' ? rename(n.output) : n.output.map(rename),
    }),
  );
}

export function exportInfo(model: KensaModel, threshold?: ThresholdChoice): ExportInfo {
  const { meta } = model;
  const method = getMethod(meta.method);
  const grid = method.inputGrid(model.state);
  const fixed = grid
    ? { height: grid[0] * method.stride, width: grid[1] * method.stride }
    : fixedInputSize(meta.preprocess);
  return {
    format: 'kensa-onnx',
    kensa_version: meta.kensa_version,
    method: meta.method,
    backbone: meta.backbone.name,
    preprocess: meta.preprocess,
    map: meta.map,
    thresholds: meta.thresholds,
    threshold: resolveThreshold(meta.thresholds, threshold),
    display: meta.calibration.display,
    input: {
      name: EXPORT_INPUT,
      type: 'uint8',
      layout: 'NHWC',
      channels: 'RGB',
      height: fixed?.height ?? null,
      width: fixed?.width ?? null,
    },
    outputs: { anomaly_map: EXPORT_OUTPUTS[0], score: EXPORT_OUTPUTS[1] },
  };
}

/** The model as ONNX bytes (see the top of this file), with its metadata. */
export async function exportOnnx(
  model: KensaModel,
  options: ExportOptions = {},
): Promise<{ bytes: Uint8Array; info: ExportInfo }> {
  const { meta } = model;
  if (meta.preprocess.tile)
    throw new KensaError(
      'E_ARGUMENT',
      `the model scores images in tiles of ${meta.preprocess.tile.size} pixels, stitched before the map step; ` +
        'one ONNX graph cannot hold that. Export a model trained without --tile, or serve this one with kensa serve',
    );
  const info = exportInfo(model, options.threshold);
  const method = getMethod(meta.method);
  const { bytes: backboneBytes, weights } = await backboneGraph(meta.backbone.name, {
    weights: options.weights,
    cacheDir: options.cacheDir,
  });
  checkWeights(model, weights);
  const backbone = onnx.ModelProto.decode(backboneBytes).graph!;
  const shared = new Set<string>([INPUT_NAME, ...FEATURE_OUTPUTS]);

  // uint8 NHWC → float NCHW, (x / 255 − mean) / std
  const scale = Float32Array.from(IMAGENET_STD, (s) => 1 / (255 * s));
  const offset = Float32Array.from(IMAGENET_MEAN, (m, c) => m / IMAGENET_STD[c]);
  const pre: NodeSpec[] = [
    { op: 'Cast', inputs: [EXPORT_INPUT], output: 'pre/float', attrs: { to: DataType.FLOAT } },
    { op: 'Transpose', inputs: ['pre/float'], output: 'pre/nchw', attrs: { perm: [0, 3, 1, 2] } },
    { op: 'Mul', inputs: ['pre/nchw', 'pre/scale'], output: 'pre/scaled' },
    { op: 'Sub', inputs: ['pre/scaled', 'pre/offset'], output: INPUT_NAME },
  ];
  const preInits = [
    float32Tensor('pre/scale', [1, 3, 1, 1], scale),
    float32Tensor('pre/offset', [1, 3, 1, 1], offset),
  ];

  // the backbone's own nodes, its internal names prefixed
  const inBackbone = prefixed('backbone/', shared);
  const backboneNodes = (backbone.node ?? []) as NodeProto[];
  for (const n of backboneNodes) {
    n.input = n.input.map(inBackbone);
    n.output = n.output.map(inBackbone);
    n.name = inBackbone(n.name || n.output[0]);
  }
  const backboneInits = (backbone.initializer ?? []) as TensorProto[];
  for (const t of backboneInits) t.name = inBackbone(t.name);

  const m = method.exportGraph(model.state);
  const inMethod = prefixed('method/', shared);
  const methodNodes = renameSpecs(m.nodes, m.initializers, inMethod);
  const grid = inMethod(m.grid);

  const step = mapStepNodes(meta.map, grid, INPUT_NAME);
  const inMap = prefixed('map/', new Set([grid, INPUT_NAME]));
  const mapNodes = renameSpecs(step.nodes, step.initializers, inMap);
  const minSide = Math.min(info.input.height ?? 32, info.input.width ?? 32);
  if (step.radius + 2 > minSide)
    throw new KensaError(
      'E_ARGUMENT',
      `the map step's Gaussian (σ ${meta.map.sigma}) reaches ${step.radius} pixels, more than the ${minSide}-pixel input allows in the graph`,
    );

  const score: NodeSpec = m.score
    ? { op: 'Identity', inputs: [inMethod(m.score)], output: 'score' }
    : { op: 'ReduceMax', inputs: [inMap(step.map)], output: 'score', attrs: { axes: [1, 2], keepdims: 0 } };
  const outputs: NodeSpec[] = [{ op: 'Identity', inputs: [inMap(step.map)], output: 'anomaly_map' }, score];

  const H = info.input.height ?? 'height';
  const W = info.input.width ?? 'width';
  const bytes = encodeModel({
    name: `kensa-${meta.method}`,
    nodes: [...pre.map(nodeProto), ...backboneNodes, ...methodNodes, ...mapNodes, ...outputs.map(nodeProto)],
    inputs: [valueInfo(EXPORT_INPUT, ['batch', H, W, 3], DataType.UINT8)],
    outputs: [valueInfo('anomaly_map', ['batch', H, W]), valueInfo('score', ['batch'])],
    initializers: [...preInits, ...backboneInits, ...m.initializers, ...step.initializers],
    metadata: {
      kensa: JSON.stringify(info),
      kensa_version: info.kensa_version,
      method: info.method,
      thresholds: JSON.stringify(info.thresholds),
      preprocess: JSON.stringify(info.preprocess),
    },
    standardOnly: true,
  });
  return { bytes, info };
}
