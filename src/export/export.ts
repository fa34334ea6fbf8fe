/**
 * kensa export: a trained model written for other runtimes, from one graph (export/onnx.ts):
 *
 *   onnx    OUT/model.onnx and OUT/kensa.json (the metadata, readable without an ONNX library); a tiled
 *           model: OUT/tile.onnx and OUT/map.onnx, with the stitching rule in kensa.json
 *   triton  a model repository for Triton Inference Server's ONNX Runtime backend:
 *           OUT/NAME/config.pbtxt (dynamic batching, max batch size, names, types, shapes),
 *           OUT/NAME/1/model.onnx, OUT/NAME/kensa.json
 *   web     a static inspection page: OUT/index.html, model.onnx (+ model.js and model-K.js, the same bytes
 *           in base64 parts for file://),
 *           onnxruntime-web's files from its npm package (ort.wasm.min.js, ort-wasm-simd-threaded.mjs and
 *           .wasm, + ort-glue.js / ort-wasm.js: the same bytes wrapped for file://) and its licence
 *
 * Every file is written atomically; a folder already holding an export is overwritten file by file.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import type { ThresholdChoice } from '../pipeline/contracts/decisions.js';
import { loadModel, type KensaModel } from '../pipeline/contracts/model-file.js';
import { checkWritable } from '../pipeline/outputs/paths.js';
import { jet } from '../report/colormap.js';
import { checkOption, OPTIONS } from '../options.js';
import { KensaError } from '../util/errors.js';
import { exportOnnx, type ExportInfo } from './onnx.js';
import { webPage } from './web-page.js';

export const EXPORT_FORMATS = ['onnx', 'triton', 'web'] as const;
/** Bytes of the graph per model-K.js of a web export (64 MiB of base64 text each). */
export const WEB_PART_BYTES = 48 * 2 ** 20;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportModelOptions {
  model: string | KensaModel;
  out: string;
  format: ExportFormat;
  threshold?: ThresholdChoice;
  /** Triton: the model's name in the repository (default kensa). */
  name?: string;
  /** Triton: the largest batch the server forms (default 8). */
  maxBatch?: number;
  /** Triton: longest a request waits for others to fill a batch (default 5 ms). */
  maxQueueDelayMs?: number;
  weights?: string;
  cacheDir?: string;
  /** Web: bytes of the graph per model-K.js (default WEB_PART_BYTES; a positive integer). */
  webPartBytes?: number;
}

export interface ExportResult {
  files: string[];
  info: ExportInfo;
  onnxBytes: number;
}

const json = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

/** Triton's config.pbtxt for the exported graph (ModelConfig in protobuf text format). */
export function tritonConfig(
  info: ExportInfo,
  name: string,
  maxBatch: number,
  maxQueueDelayMs: number,
): string {
  const h = info.input.height ?? -1;
  const w = info.input.width ?? -1;
  return `# Triton Inference Server model configuration written by kensa ${info.kensa_version} (${info.method}).
# Input: uint8 RGB images [${h}, ${w}, 3] (batched: [N, ${h}, ${w}, 3])${h === -1 ? '; H and W from the image size (kensa.json: preprocess)' : ''}.
# Outputs: anomaly_map [N, H, W] and score [N]; NG when score > ${info.threshold.value} (${info.threshold.name}).
name: "${name}"
backend: "onnxruntime"
max_batch_size: ${maxBatch}
input [
  {
    name: "${info.input.name}"
    data_type: TYPE_UINT8
    dims: [ ${h}, ${w}, 3 ]
  }
]
output [
  {
    name: "${info.outputs.anomaly_map}"
    data_type: TYPE_FP32
    dims: [ ${h}, ${w} ]
  },
  {
    name: "${info.outputs.score}"
    data_type: TYPE_FP32
    dims: [ 1 ]
    reshape: { shape: [ ] }
  }
]
dynamic_batching {
  max_queue_delay_microseconds: ${Math.round(maxQueueDelayMs * 1000)}
}
`;
}

/** The folder of an npm package's dist files. */
function ortWebDist(): string {
  const require = createRequire(import.meta.url);
  try {
    return join(dirname(require.resolve('onnxruntime-web')), '.');
  } catch (error) {
    throw new KensaError(
      'E_NOT_FOUND',
      'onnxruntime-web is not installed; run npm install in kensa’s folder (it is one of its dependencies)',
      { cause: error },
    );
  }
}

export async function exportModel(options: ExportModelOptions): Promise<ExportResult> {
  const { out, format } = options;
  if (!EXPORT_FORMATS.includes(format))
    throw new KensaError(
      'E_ARGUMENT',
      `Expected one of ${EXPORT_FORMATS.join(', ')} for --format but received '${format}'`,
    );
  const name = options.name ?? 'kensa';
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name) || name.startsWith('.'))
    throw new KensaError(
      'E_ARGUMENT',
      `Expected letters, digits, '_', '.' or '-' for --name but received '${name}'`,
    );
  checkOption('tritonMaxBatch', options.maxBatch, 'maxBatch');
  checkOption('maxQueueDelayMs', options.maxQueueDelayMs);
  await checkWritable(out, 'folder');
  const model = typeof options.model === 'string' ? await loadModel(options.model) : options.model;
  if (model.meta.preprocess.tile && format !== 'onnx')
    throw new KensaError(
      'E_ARGUMENT',
      `the model scores images in tiles of ${model.meta.preprocess.tile.size} pixels, stitched before the map step: ` +
        `--format onnx writes its tile and map graphs with the stitching rule; --format ${format} takes one-graph models. ` +
        'Serve this model with kensa serve, or export a model trained without --tile',
    );
  const { bytes, map, info } = await exportOnnx(model, options);
  const files: string[] = [];
  const write = async (rel: string, data: Uint8Array | string) => {
    await writeFileAtomic(join(out, rel), data);
    files.push(rel);
  };
  if (map) {
    await write('tile.onnx', bytes);
    await write('map.onnx', map);
    await write('kensa.json', json(info));
  } else if (format === 'onnx') {
    await write('model.onnx', bytes);
    await write('kensa.json', json(info));
  } else if (format === 'triton') {
    await write(join(name, '1', 'model.onnx'), bytes);
    await write(
      join(name, 'config.pbtxt'),
      tritonConfig(
        info,
        name,
        options.maxBatch ?? OPTIONS.tritonMaxBatch.default,
        options.maxQueueDelayMs ?? OPTIONS.maxQueueDelayMs.default,
      ),
    );
    await write(join(name, 'kensa.json'), json(info));
  } else {
    const dist = ortWebDist();
    const lut = Array.from({ length: 256 }, (_, i) => jet(i / 255)).flat();
    const b64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
    // the graph for file:// in parts: a browser's (and Node's) strings end near 512 MB, and an ensemble's
    // graph is ~430 MB, 570 MB in base64
    const part = options.webPartBytes ?? WEB_PART_BYTES;
    if (!Number.isInteger(part) || part < 1)
      throw new KensaError('E_ARGUMENT', `Expected a positive integer for webPartBytes but received ${part}`);
    const parts = Math.max(1, Math.ceil(bytes.length / part));
    await write('index.html', webPage(lut, `kensa — ${info.method}`, parts));
    await write('model.onnx', bytes);
    await write(
      'model.js',
      `window.KENSA_INFO = ${JSON.stringify(info)};\nwindow.KENSA_MODEL_BYTES = ${bytes.length};\nwindow.KENSA_MODEL_PARTS = [];\n`,
    );
    for (let k = 0; k < parts; k++)
      await write(
        `model-${k}.js`,
        `window.KENSA_MODEL_PARTS[${k}] = "${b64(bytes.subarray(k * part, (k + 1) * part))}";\n`,
      );
    await write('kensa.json', json(info));
    const ortFile = (f: string) => readFile(join(dist, f));
    await write('ort.wasm.min.js', await ortFile('ort.wasm.min.js'));
    const glue = await ortFile('ort-wasm-simd-threaded.mjs');
    const wasm = await ortFile('ort-wasm-simd-threaded.wasm');
    await write('ort-wasm-simd-threaded.mjs', glue);
    await write('ort-wasm-simd-threaded.wasm', wasm);
    await write('ort-glue.js', `window.KENSA_ORT_GLUE = ${JSON.stringify(glue.toString('utf8'))};\n`);
    await write('ort-wasm.js', `window.KENSA_ORT_WASM = "${b64(wasm)}";\n`);
    const licence = await readFile(join(dist, '..', 'LICENSE')).catch(() => undefined);
    await write(
      'THIRD_PARTY_NOTICES.txt',
      'onnxruntime-web (MIT licence, © Microsoft Corporation): ort.wasm.min.js, ort-wasm-simd-threaded.*; ' +
        'ort-glue.js and ort-wasm.js hold the same files wrapped for file:// pages.\n\n' +
        (licence?.toString('utf8') ??
          'MIT License — https://github.com/microsoft/onnxruntime/blob/main/LICENSE\n'),
    );
  }
  return { files, info, onnxBytes: bytes.length };
}
