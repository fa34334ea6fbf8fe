/**
 * The model file: safetensors (readable by Python's `safetensors`) with the tensors a scorer needs and
 * one JSON metadata block: format version, backbone and the sha256 of its weights, preprocessing,
 * channel indices, calibration and thresholds. Never pickle, never eval. Same model → same bytes.
 *
 * Tensors: padim.mean [P, d] f32, padim.precision [P, d, d] f32, padim.channel_index [d] i32,
 *          calibration.validation_scores [n] f32.
 */
import { readFileOrExplain } from '../io/read.js';
import type { GaussianStats } from '../models/padim/model.js';
import { writeFileAtomic } from '../io/atomic.js';
import { parseSafetensors, serializeSafetensors } from '../io/safetensors.js';
import { KensaError } from '../util/errors.js';
import type { Tensor } from '../util/tensor.js';
import type { Preprocess } from '../image/preprocess.js';

export const MODEL_FORMAT = 'kensa-model';
export const MODEL_FORMAT_VERSION = 1;

export interface Thresholds {
  /** The highest validation score: no false positive on the known-good validation images. */
  fpr0: number;
  /** The `quantile` of the validation scores. */
  quantile: number;
  /** Best F1 on a labelled test set, stored by `kensa test --save-model`. */
  f1?: number;
  /** Chosen by the user (`kensa threshold --set`, e.g. from the report's slider); predict's default when set. */
  custom?: number;
}

export interface ModelMetadata {
  format: typeof MODEL_FORMAT;
  format_version: number;
  method: 'padim';
  kensa_version: string;
  backbone: {
    name: string;
    weights_sha256: string;
    weights_official: boolean;
    channels: [number, number, number];
  };
  preprocess: Preprocess;
  padim: { d: number; seed: number; epsilon: number; sigma: number; grid: [number, number] };
  training: { train_images: number; validation_images: number; validation_fraction: number; seed: number };
  calibration: {
    quantile: number;
    validation: { count: number; min: number; median: number; mean: number; max: number };
    /** Display range of heat maps: a typical good-pixel level and 1.5× the fpr0 threshold. */
    display: [number, number];
  };
  thresholds: Thresholds;
}

export interface KensaModel {
  meta: ModelMetadata;
  stats: GaussianStats;
  validationScores: Float32Array;
}

export function serializeModel(model: KensaModel): Uint8Array {
  const { meta, stats } = model;
  const P = stats.layout.height * stats.layout.width;
  const d = stats.layout.index.length;
  const tensors: [string, Tensor][] = [
    ['padim.mean', { dtype: 'float32', shape: [P, d], data: stats.mean }],
    ['padim.precision', { dtype: 'float32', shape: [P, d, d], data: stats.precision }],
    ['padim.channel_index', { dtype: 'int32', shape: [d], data: stats.layout.index }],
    [
      'calibration.validation_scores',
      { dtype: 'float32', shape: [model.validationScores.length], data: model.validationScores },
    ],
  ];
  return serializeSafetensors(tensors, {
    format: MODEL_FORMAT,
    format_version: String(MODEL_FORMAT_VERSION),
    kensa: JSON.stringify(meta),
  });
}

export async function saveModel(path: string, model: KensaModel): Promise<void> {
  await writeFileAtomic(path, serializeModel(model));
}

function invalid(file: string, message: string): never {
  throw new KensaError('E_FORMAT', `not a usable kensa model: ${message}. Train it again with kensa train`, {
    file,
  });
}

const isInt = (v: unknown, min = 0) => Number.isSafeInteger(v) && (v as number) >= min;
const isNum = (v: unknown) => typeof v === 'number';
const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** What is wrong with parsed metadata (every field a scorer relies on), or undefined. */
function metadataProblem(m: unknown): string | undefined {
  if (!isObj(m)) return 'is not an object';
  const b = m.backbone;
  if (!isObj(b) || typeof b.name !== 'string' || typeof b.weights_sha256 !== 'string')
    return 'lacks the backbone';
  if (!Array.isArray(b.channels) || b.channels.length !== 3 || !b.channels.every((c) => isInt(c, 1)))
    return 'lacks the backbone channels';
  const p = m.preprocess;
  if (
    !isObj(p) ||
    !(
      (p.mode === 'resize' && isInt(p.size, 16)) ||
      (p.mode === 'crop' && isInt(p.resize, 16) && isInt(p.crop, 16))
    )
  ) {
    return 'has no valid preprocessing';
  }
  const size = p.mode === 'resize' ? (p.size as number) : (p.crop as number);
  const pd = m.padim;
  if (
    !isObj(pd) ||
    !isInt(pd.d, 1) ||
    !Array.isArray(pd.grid) ||
    pd.grid.length !== 2 ||
    !pd.grid.every((g) => isInt(g, 1))
  ) {
    return 'lacks the PaDiM grid or d';
  }
  if (pd.grid[0] * 4 !== size || pd.grid[1] * 4 !== size)
    return `has a grid ${pd.grid.join('×')} that does not fit the input size ${size}`;
  if (pd.grid[0] * pd.grid[1] * (pd.d as number) ** 2 > 2 ** 31)
    return 'declares statistics too large to hold';
  const t = m.thresholds;
  const optional = (v: unknown) => v === undefined || isNum(v);
  if (!isObj(t) || !isNum(t.fpr0) || !isNum(t.quantile) || !optional(t.f1) || !optional(t.custom)) {
    return 'lacks the thresholds';
  }
  const c = m.calibration;
  if (!isObj(c) || !Array.isArray(c.display) || c.display.length !== 2 || !c.display.every(Number.isFinite))
    return 'lacks the calibration';
  if (!isObj(m.training) || !isInt(m.training.train_images)) return 'lacks the training summary';
  return undefined;
}

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

export function parseModel(bytes: Uint8Array, file: string): KensaModel {
  const { tensors, metadata } = parseSafetensors(bytes, file);
  if (metadata.format !== MODEL_FORMAT)
    invalid(
      file,
      `the file is a safetensors file but not a kensa model (format ${JSON.stringify(metadata.format)})`,
    );
  if (metadata.format_version !== String(MODEL_FORMAT_VERSION)) {
    throw new KensaError(
      'E_FORMAT',
      `model format version ${metadata.format_version} is not supported by this kensa (it reads version ${MODEL_FORMAT_VERSION}). ` +
        'Use the kensa version that wrote it, or train the model again',
      { file },
    );
  }
  let meta: ModelMetadata;
  try {
    meta = JSON.parse(metadata.kensa ?? '') as ModelMetadata;
  } catch {
    invalid(file, 'its metadata is not JSON');
  }
  const problem = metadataProblem(meta);
  if (problem) invalid(file, `its metadata ${problem}`);
  const [gh, gw] = meta.padim.grid;
  const d = meta.padim.d;
  const P = gh * gw;
  const get = (name: string, shape: number[], dtype: string) => {
    const t = tensors.get(name);
    if (!t) invalid(file, `tensor ${name} is missing`);
    if (t.dtype !== dtype || t.shape.join() !== shape.join()) {
      invalid(
        file,
        `tensor ${name} is ${t.dtype} [${t.shape.join(', ')}], expected ${dtype} [${shape.join(', ')}]`,
      );
    }
    return t.data;
  };
  const mean = get('padim.mean', [P, d], 'float32') as Float32Array;
  const precision = get('padim.precision', [P, d, d], 'float32') as Float32Array;
  const index = get('padim.channel_index', [d], 'int32') as Int32Array;
  const scores = tensors.get('calibration.validation_scores');
  if (!scores || scores.dtype !== 'float32') invalid(file, 'tensor calibration.validation_scores is missing');
  if (!allFinite(mean) || !allFinite(precision))
    invalid(file, 'it holds non-finite numbers (NaN or infinity)');
  const channels = meta.backbone.channels;
  const total = channels[0] + channels[1] + channels[2];
  if (index.some((c, i) => c < 0 || c >= total || (i > 0 && c <= index[i - 1])))
    invalid(file, 'its channel indices are out of range');
  for (const [name, v] of Object.entries(meta.thresholds)) {
    if (v !== undefined && !Number.isFinite(v)) invalid(file, `threshold ${name} is not a finite number`);
  }
  return {
    meta,
    stats: {
      layout: { channels, index, height: gh, width: gw },
      mean,
      precision,
      count: meta.training.train_images,
    },
    validationScores: scores.data as Float32Array,
  };
}

export async function loadModel(path: string): Promise<KensaModel> {
  const bytes = await readFileOrExplain(path, 'model file', 'Check the path given to --model');
  return parseModel(bytes, path);
}

/** Stores a user-chosen threshold ("custom") in the model file, atomically; returns the updated model. */
export async function setCustomThreshold(path: string, value: number): Promise<KensaModel> {
  if (!Number.isFinite(value))
    throw new KensaError('E_ARGUMENT', `Expected a finite number for --set but received ${value}`);
  const model = await loadModel(path);
  const updated = {
    ...model,
    meta: { ...model.meta, thresholds: { ...model.meta.thresholds, custom: value } },
  };
  await saveModel(path, updated);
  return updated;
}
