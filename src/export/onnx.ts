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
 * A tiled model is two graphs, because its tiles are scored separately and stitched before the map step:
 * tile.onnx (tiles → each tile's grid; PatchCore also its peak and score from the cells the tile owns,
 * given as the input `owned`) and map.onnx (the stitched grid and the image size → the map and its
 * maximum); `kensa.json`'s `tiling.rule` says how a caller tiles and stitches, as kensa does.
 *
 * Metadata (ONNX metadata_props): `kensa` (JSON: version, method, backbone, preprocess, map settings,
 * thresholds and the default one, the colour range of the heat map, the input and output names),
 * plus `kensa_version`, `method`, `thresholds`, `preprocess` as their own keys for quick reading.
 */
import { backboneGraph } from '../backbone/backbone.js';
import { canonicalBackboneGraph, checkExportable } from '../backbone/onnx-backbone.js';
import { FEATURE_OUTPUTS, INPUT_NAME } from '../backbone/graph.js';
import { IMAGENET_MEAN, IMAGENET_STD, fixedInputSize } from '../image/preprocess.js';
import { getMethod } from '../models/registry.js';
import {
  DataType,
  encodeModel,
  float32Tensor,
  nodeProto,
  onnx,
  prefixed,
  renameSpecs,
  valueInfo,
  type NodeProto,
  type NodeSpec,
  type TensorProto,
} from '../onnx/graph.js';
import { checkWeights } from '../pipeline/engine/inspector.js';
import { resolveThreshold, type ThresholdChoice } from '../pipeline/contracts/decisions.js';
import type { KensaModel } from '../pipeline/contracts/model-file.js';
import { mapStepNodes } from '../postprocess/anomaly-map.js';
import { KensaError } from '../util/errors.js';

export const EXPORT_INPUT = 'image';
export const EXPORT_OUTPUTS = ['anomaly_map', 'score'] as const;
/** A tiled PatchCore model's tile graph input: the cells each tile owns (0/1, [N, h, w]). */
export const TILE_OWNED = 'owned';

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
  /** A tiled model: the two graphs and how a caller tiles and stitches (null for one graph). */
  tiling: {
    size: number;
    overlap: number;
    /** Input pixels per grid cell. */
    stride: number;
    graphs: { tile: string; map: string };
    rule: string;
  } | null;
}

export function exportInfo(model: KensaModel, threshold?: ThresholdChoice): ExportInfo {
  const { meta } = model;
  const method = getMethod(meta.method);
  const grid = method.inputGrid(model.state);
  const tile = meta.preprocess.tile;
  const fixed = tile
    ? { height: tile.size, width: tile.size }
    : grid
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
    threshold: resolveThreshold(meta.thresholds, threshold, method.scoreRange),
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
    tiling: tile
      ? {
          size: tile.size,
          overlap: tile.overlap,
          stride: method.stride,
          graphs: { tile: 'tile.onnx', map: 'map.onnx' },
          rule: tilingRule(method.ownScore),
        }
      : null,
  };
}

/** How a caller scores a tiled model with tile.onnx and map.onnx (image/tiles.ts, pipeline/inspector.ts). */
const tilingRule = (ownScore: boolean) =>
  [
    'Resize the image to its processed size W×H (the preprocess rule). Per axis of length L, tile offsets are',
    '0, step, 2·step, … while offset + tile < L (step = tile − overlap), then L − tile (just 0 when L ≤ tile).',
    'Each tile owns, per axis, [a, b): a = 0 for the first tile, else the midpoint of its centre and the previous',
    "tile's centre rounded to a multiple of 16; b = L for the last, else the midpoint with the next's; clipped to",
    'the tile. Run tile.onnx on the tiles (uint8 [N, tile, tile, 3]' +
      (ownScore
        ? ", and 'owned': 1 on the tile's own cells, 0 elsewhere, [N, tile/stride, tile/stride]"
        : '') +
      "); copy each tile's own cells of 'grid' into the image's grid [H/stride, W/stride]. Run map.onnx on that",
    "grid (as [1, h, w]) and 'size' [H, W]: 'anomaly_map' is the map. The image score is " +
      (ownScore ? "the 'score' of the tile with the largest 'peak'." : "the map's maximum ('map_max')."),
  ].join(' ');

/** The backbone's graph: built from the weights, or a user's network from the model (canonical form). */
async function backboneBytesOf(model: KensaModel, options: ExportOptions): Promise<Uint8Array> {
  const { onnx: own, name } = model.meta.backbone;
  if (own) {
    if (!model.backboneOnnx)
      throw new KensaError('E_ARGUMENT', `the model's ONNX backbone ${own.file} was not loaded with it`);
    if (options.weights)
      throw new KensaError(
        'E_ARGUMENT',
        `the model carries its own backbone (${own.file}, brought with --backbone-onnx); --weights does not apply to it`,
      );
    checkExportable(model.backboneOnnx, own.file);
    return canonicalBackboneGraph(model.backboneOnnx, own.layers, own.file);
  }
  const { bytes, weights } = await backboneGraph(name, {
    weights: options.weights,
    cacheDir: options.cacheDir,
  });
  checkWeights(model, weights);
  return bytes;
}

/** The model as ONNX bytes (see the top of this file), with its metadata; a tiled model as two graphs. */
export async function exportOnnx(
  model: KensaModel,
  options: ExportOptions = {},
): Promise<{ bytes: Uint8Array; map?: Uint8Array; info: ExportInfo }> {
  const { meta } = model;
  const tile = meta.preprocess.tile;
  const info = exportInfo(model, options.threshold);
  const method = getMethod(meta.method);
  const backbone = onnx.ModelProto.decode(await backboneBytesOf(model, options)).graph!;
  const shared = new Set<string>([INPUT_NAME, ...FEATURE_OUTPUTS, TILE_OWNED]);

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

  // a tiled model's method graph takes each tile's own cells (a method's own image score comes from them)
  const owned = tile && method.ownScore ? TILE_OWNED : undefined;
  const m = method.exportGraph(model.state, owned);
  const inMethod = prefixed('method/', shared);
  const methodNodes = renameSpecs(m.nodes, m.initializers, inMethod).map(nodeProto);
  const grid = inMethod(m.grid);

  const step = mapStepNodes(meta.map, tile ? 'grid' : grid, tile ? { hw: 'size' } : { like: INPUT_NAME });
  const inMap = prefixed('map/', new Set([grid, INPUT_NAME, 'grid', 'size']));
  const mapNodes = renameSpecs(step.nodes, step.initializers, inMap).map(nodeProto);
  const minSide = Math.min(info.input.height ?? 32, info.input.width ?? 32);
  if (step.radius + 2 > minSide)
    throw new KensaError(
      'E_ARGUMENT',
      `the map step's Gaussian (σ ${meta.map.sigma}) reaches ${step.radius} pixels, more than the ${minSide}-pixel input allows in the graph`,
    );
  const metadata = {
    kensa: JSON.stringify(info),
    kensa_version: info.kensa_version,
    method: info.method,
    thresholds: JSON.stringify(info.thresholds),
    preprocess: JSON.stringify(info.preprocess),
  };
  const H = info.input.height ?? 'height';
  const W = info.input.width ?? 'width';
  const front = [...pre.map(nodeProto), ...backboneNodes, ...methodNodes];
  const frontInits = [...preInits, ...backboneInits, ...m.initializers];
  const imageInput = valueInfo(EXPORT_INPUT, ['batch', H, W, 3], DataType.UINT8);

  if (tile) {
    // the tile graph: tiles → their grids (and PatchCore's peak and score from each tile's own cells)
    const s = method.stride;
    const cells = tile.size / s;
    const tileOutputs: NodeSpec[] = [
      { op: 'Identity', inputs: [grid], output: 'grid' },
      ...(m.peak ? [{ op: 'Identity', inputs: [inMethod(m.peak)], output: 'peak' }] : []),
      ...(m.score ? [{ op: 'Identity', inputs: [inMethod(m.score)], output: 'score' }] : []),
    ];
    const bytes = encodeModel({
      name: `kensa-${meta.method}-tile`,
      nodes: [...front, ...tileOutputs.map(nodeProto)],
      inputs: [imageInput, ...(owned ? [valueInfo(TILE_OWNED, ['batch', cells, cells])] : [])],
      outputs: [
        valueInfo('grid', ['batch', cells, cells]),
        ...(m.peak ? [valueInfo('peak', ['batch'])] : []),
        ...(m.score ? [valueInfo('score', ['batch'])] : []),
      ],
      initializers: frontInits,
      metadata,
      standardOnly: true,
    });
    // the map graph: the stitched grid of one image and its size → the map and its maximum
    const map = encodeModel({
      name: `kensa-${meta.method}-map`,
      nodes: [
        ...mapNodes,
        nodeProto({ op: 'Identity', inputs: [inMap(step.map)], output: 'anomaly_map' }),
        nodeProto({
          op: 'ReduceMax',
          inputs: [inMap(step.map)],
          output: 'map_max',
          attrs: { axes: [1, 2], keepdims: 0 },
        }),
      ],
      inputs: [valueInfo('grid', [1, 'grid_height', 'grid_width']), valueInfo('size', [2], DataType.INT64)],
      outputs: [valueInfo('anomaly_map', [1, 'height', 'width']), valueInfo('map_max', [1])],
      initializers: step.initializers,
      metadata,
      standardOnly: true,
    });
    return { bytes, map, info };
  }

  const score: NodeSpec = m.score
    ? { op: 'Identity', inputs: [inMethod(m.score)], output: 'score' }
    : { op: 'ReduceMax', inputs: [inMap(step.map)], output: 'score', attrs: { axes: [1, 2], keepdims: 0 } };
  const outputs: NodeSpec[] = [{ op: 'Identity', inputs: [inMap(step.map)], output: 'anomaly_map' }, score];
  const bytes = encodeModel({
    name: `kensa-${meta.method}`,
    nodes: [...front, ...mapNodes, ...outputs.map(nodeProto)],
    inputs: [imageInput],
    outputs: [valueInfo('anomaly_map', ['batch', H, W]), valueInfo('score', ['batch'])],
    initializers: [...frontInits, ...step.initializers],
    metadata,
    standardOnly: true,
  });
  return { bytes, info };
}
