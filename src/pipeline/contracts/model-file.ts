/**
 * The model file: safetensors (readable by Python's `safetensors`) with the tensors the method needs
 * and one JSON metadata block: format version, method, backbone and the sha256 of its weights,
 * preprocessing, the map step's settings, the method's own settings (under its name), the calibration
 * and the thresholds. Never pickle, never eval. Same model → same bytes.
 *
 * Tensors: the method's (models/<method>/method.ts: padim.* or patchcore.*) and calibration.scores [n] f32,
 * the calibration scores of the good images (out-of-fold, or of the hold-out); with a user's backbone
 * (train --backbone-onnx) also backbone.onnx [bytes] u8, the ONNX file as it was given.
 *
 * The header keeps spare space, so a threshold change (kensa threshold --set, kensa test --save-model)
 * rewrites only the header of a kernel copy of the file, never the tensors through memory.
 *
 * Format versions: 2 (this one); 1 (kensa 0.1: PaDiM with full precision matrices, hold-out calibration)
 * still loads.
 */
import type { ModelBackbone } from '../../backbone/registry.js';
import { stat } from 'node:fs/promises';
import { getBackbone } from '../../backbone/registry.js';
import {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  readSafetensorsHeader,
  readSafetensorsTensor,
  rewriteSafetensorsMetadata,
  writeSafetensors,
} from '../../io/safetensors.js';
import { fixedInputSize, validatePreprocess, type Preprocess } from '../../image/preprocess.js';
import type { MethodState } from '../../models/method.js';
import { getMethod, METHOD_NAMES } from '../../models/registry.js';
import { PADDINGS, type MapSettings } from '../../postprocess/anomaly-map.js';
import { KensaError } from '../../util/errors.js';
import { sha256Bytes, tensorsDigest } from '../../util/hash.js';
import type { CalibrationSummary } from './calibration.js';

export type { CalibrationSummary };
import type { Tensor } from '../../util/tensor.js';

export const MODEL_FORMAT = 'kensa-model';
export const MODEL_FORMAT_VERSION = 2;
export const READABLE_VERSIONS = [1, 2];
/** Spare header bytes for later metadata changes (thresholds) without rewriting the tensors. */
const HEADER_RESERVE = 4096;

export interface Thresholds {
  /** The highest calibration score: no false alarm on any known-good image scored in calibration. */
  fpr0: number;
  /** The `quantile` of the calibration scores (absent in classifier files of format 1 only). */
  quantile?: number;
  /** Best F1 on a labelled test set, stored by `kensa test --save-model`. */
  f1?: number;
  /** Chosen by the user (`kensa threshold --set`, e.g. from the report's slider); predict's default when set. */
  custom?: number;
}

export interface ModelMetadata {
  format: typeof MODEL_FORMAT;
  format_version: number;
  /** The method's name (models/registry.ts); its settings are stored under that name. */
  method: string;
  kensa_version: string;
  backbone: ModelBackbone;
  preprocess: Preprocess;
  map: MapSettings;
  training: {
    /** Good images the final model was fitted on. */
    train_images: number;
    /** Unreadable training images that were left out. */
    skipped: number;
    seed: number;
    folds?: number;
    validation_fraction?: number;
    validation_images?: number;
    /** Good images added since (kensa update), oldest first. */
    updates?: ModelUpdate[];
  };
  calibration: CalibrationSummary;
  thresholds: Thresholds;
  /** Millimetres per original-image pixel, when the line gave it (train --mm-per-pixel). */
  mm_per_pixel?: number;
}

/** One kensa update: when, how many images came, how they were calibrated, and fpr0 before and after. */
export interface ModelUpdate {
  at: string;
  kensa_version: string;
  added: number;
  /** Images given but left out (unreadable, or in the model already). */
  skipped: number;
  calibration: 'loo' | 'kfold';
  folds?: number;
  fpr0_before: number;
  fpr0_after: number;
}

export interface KensaModel {
  meta: ModelMetadata;
  state: MethodState;
  /** Calibration scores of the good images. */
  calibrationScores: Float32Array;
  /** The ONNX file of a backbone brought by the user (meta.backbone.onnx), as it was given. */
  backboneOnnx?: Uint8Array;
}

/** The tensor that holds a user's ONNX backbone (uint8, the file's bytes). */
const BACKBONE_TENSOR = 'backbone.onnx';

/** The method's own metadata block (stored under its name). */
export function methodMeta(meta: ModelMetadata): Record<string, unknown> {
  return ((meta as unknown as Record<string, unknown>)[meta.method] ?? {}) as Record<string, unknown>;
}

function fileContent(model: KensaModel): { tensors: [string, Tensor][]; metadata: Record<string, string> } {
  const method = getMethod(model.meta.method);
  const { tensors, meta } = method.serialize(model.state);
  const full = { ...model.meta, format_version: MODEL_FORMAT_VERSION, [model.meta.method]: meta };
  const all: [string, Tensor][] = [
    ...tensors,
    [
      'calibration.scores',
      { dtype: 'float32', shape: [model.calibrationScores.length], data: model.calibrationScores },
    ],
  ];
  if (model.meta.backbone.onnx) {
    if (!model.backboneOnnx)
      throw new KensaError(
        'E_ARGUMENT',
        `the model's backbone ${model.meta.backbone.name} is missing its ONNX file`,
      );
    all.push([
      BACKBONE_TENSOR,
      { dtype: 'uint8', shape: [model.backboneOnnx.length], data: model.backboneOnnx },
    ]);
  }
  return {
    tensors: all,
    metadata: {
      format: MODEL_FORMAT,
      format_version: String(MODEL_FORMAT_VERSION),
      kensa: JSON.stringify(full),
      tensors_sha256: tensorsDigest(all),
    },
  };
}

/** The whole model file as bytes (for small models and tests; saveModel writes large ones tensor by tensor). */
export function serializeModel(model: KensaModel): Uint8Array {
  const { tensors, metadata } = fileContent(model);
  return serializeSafetensors(tensors, metadata, { reserve: HEADER_RESERVE });
}

/** A model from the bytes of its file (`file` names it in messages). */
export function parseModel(bytes: Uint8Array, file: string): KensaModel {
  const { tensors, metadata } = parseSafetensors(bytes, file);
  return parseModelContent(tensors, metadata, file);
}

/** Writes the model atomically, tensor by tensor. */
export async function saveModel(path: string, model: KensaModel): Promise<void> {
  const { tensors, metadata } = fileContent(model);
  await writeSafetensors(path, tensors, metadata, { reserve: HEADER_RESERVE });
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

/** A version-1 metadata block (kensa 0.1, PaDiM only) in today's shape. */
function upgradeV1(m: Record<string, unknown>): Record<string, unknown> {
  const padim = isObj(m.padim) ? m.padim : {};
  const training = isObj(m.training) ? m.training : {};
  const calibration = isObj(m.calibration) ? m.calibration : {};
  const validation = isObj(calibration.validation) ? calibration.validation : {};
  return {
    ...m,
    method: 'padim',
    map: { sigma: isNum(padim.sigma) ? padim.sigma : 4, padding: 'reflect' },
    training: { ...training, skipped: 0 },
    calibration: {
      mode: 'holdout',
      quantile: calibration.quantile,
      scores: validation,
      false_alarm_bound_95: isInt(validation.count, 1) ? Math.min(1, 3 / (validation.count as number)) : 1,
      display: calibration.display,
    },
  };
}

/** The format of classifier files before the classifier was a method (kensa classify train, kensa 0.1). */
const CLASSIFIER_V1 = 'kensa-classifier';

/**
 * A kensa-classifier file's metadata (format 1) in today's shape. Its calibration scores were not kept,
 * only the highest (its fpr0) and their count; it had no quantile threshold; its map was the class
 * activation in logit units, today the activation as a probability (on the score's scale, 0 to 1).
 */
function upgradeClassifierV1(m: Record<string, unknown>): Record<string, unknown> {
  const training = (isObj(m.training) ? m.training : {}) as Record<string, unknown>;
  const validation = isObj(training.validation) ? training.validation : {};
  const head = isObj(m.head) ? m.head : {};
  const thresholds = isObj(m.thresholds) ? m.thresholds : {};
  const count = isInt(validation.good) ? (validation.good as number) : 0;
  const sum = (a: unknown, b: unknown) => (isInt(a) ? (a as number) : 0) + (isInt(b) ? (b as number) : 0);
  return {
    format: MODEL_FORMAT,
    format_version: MODEL_FORMAT_VERSION,
    method: 'classifier',
    kensa_version: m.kensa_version,
    backbone: m.backbone,
    preprocess: m.preprocess,
    map: m.map,
    training: {
      train_images: sum(training.good, training.ng),
      skipped: isInt(training.skipped) ? training.skipped : 0,
      seed: isInt(training.seed) ? training.seed : 0,
      validation_images: sum(validation.good, validation.ng),
    },
    calibration: {
      mode: 'holdout',
      scores: { count, min: null, median: null, mean: null, max: thresholds.fpr0 },
      false_alarm_bound_95: count ? Math.min(1, 3 / count) : 1,
      display: [0, 1],
    },
    thresholds: {
      fpr0: thresholds.fpr0,
      ...(isNum(thresholds.f1) ? { f1: thresholds.f1 } : {}),
    },
    classifier: {
      ...(isObj(m.features) ? m.features : {}),
      bias: head.bias,
      temperature: head.temperature,
      training: m.training,
      history: m.history,
      calibration: m.calibration,
    },
  };
}

/** The tensors of a kensa-classifier file (format 1) under today's names. */
function classifierTensorsV1(tensors: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of tensors) out.set(name.replace(/^head\./, 'classifier.'), t);
  return out;
}

/** What is wrong with parsed (current-shape) metadata, or undefined. */
function metadataProblem(m: Record<string, unknown>): string | undefined {
  const b = m.backbone;
  if (!isObj(b) || typeof b.name !== 'string' || typeof b.weights_sha256 !== 'string')
    return 'lacks the backbone';
  if (b.onnx !== undefined) {
    const o = b.onnx;
    if (
      !isObj(o) ||
      typeof o.file !== 'string' ||
      !isInt(o.bytes, 1) ||
      !Array.isArray(o.layers) ||
      o.layers.length !== 3 ||
      !o.layers.every((l) => typeof l === 'string' && l)
    )
      return "lacks the ONNX backbone's file name, size or layer names";
  } else {
    try {
      getBackbone(b.name);
    } catch {
      return `names an unknown backbone '${b.name}'`;
    }
  }
  if (!Array.isArray(b.channels) || b.channels.length !== 3 || !b.channels.every((c) => isInt(c, 1)))
    return 'lacks the backbone channels';
  if (typeof m.method !== 'string' || !METHOD_NAMES.includes(m.method))
    return `names an unknown method ${JSON.stringify(m.method)} (this kensa knows ${METHOD_NAMES.join(', ')})`;
  if (!isObj(m.preprocess)) return 'has no valid preprocessing';
  try {
    validatePreprocess(m.preprocess as Preprocess);
  } catch (error) {
    return `has no valid preprocessing (${(error as Error).message})`;
  }
  const map = m.map;
  if (!isObj(map) || !(isNum(map.sigma) && (map.sigma as number) > 0 && (map.sigma as number) <= 64))
    return 'lacks the map settings';
  if (!PADDINGS.includes(map.padding as MapSettings['padding'])) return 'lacks the map padding';
  const t = m.thresholds;
  const optional = (v: unknown) => v === undefined || isNum(v);
  if (!isObj(t) || !isNum(t.fpr0) || !optional(t.quantile) || !optional(t.f1) || !optional(t.custom))
    return 'lacks the thresholds';
  const [, top] = getMethod(m.method).scoreRange;
  for (const [name, v] of Object.entries(t)) {
    if (v !== undefined && !Number.isFinite(v)) return `threshold ${name} is not a finite number`;
    // a threshold at or below 0 would make every image NG; one above the scores' range is not a threshold
    // (at its top — a probability of 1 in float32 — no image is NG: train warns of that)
    if (typeof v === 'number' && v <= 0)
      return `threshold ${name} is ${v}, not above 0 (every image would be NG)`;
    if (typeof v === 'number' && v > top)
      return `threshold ${name} is ${v}, above ${top}, the highest score this model gives`;
  }
  const c = m.calibration;
  if (!isObj(c) || !Array.isArray(c.display) || c.display.length !== 2 || !c.display.every(Number.isFinite))
    return 'lacks the calibration';
  if (!isObj(m.training) || !isInt(m.training.train_images)) return 'lacks the training summary';
  if (m.mm_per_pixel !== undefined && !(isNum(m.mm_per_pixel) && (m.mm_per_pixel as number) > 0))
    return `has a pixel size of ${String(m.mm_per_pixel)} mm, not a positive number`;
  return undefined;
}

/** The metadata block of a file's safetensors metadata, validated (format, version, fields). */
export function parseModelMetadata(metadata: Record<string, string>, file: string): ModelMetadata {
  const legacyClassifier = metadata.format === CLASSIFIER_V1;
  if (legacyClassifier && Number(metadata.format_version) !== 1)
    throw new KensaError(
      'E_FORMAT',
      `classifier format version ${metadata.format_version} is not supported by this kensa; train it again`,
      { file },
    );
  if (metadata.format !== MODEL_FORMAT && !legacyClassifier)
    invalid(
      file,
      `the file is a safetensors file but not a kensa model (format ${JSON.stringify(metadata.format)})`,
    );
  const version = legacyClassifier ? MODEL_FORMAT_VERSION : Number(metadata.format_version);
  if (!READABLE_VERSIONS.includes(version)) {
    throw new KensaError(
      'E_FORMAT',
      `model format version ${metadata.format_version} is not supported by this kensa (it reads versions ${READABLE_VERSIONS.join(' and ')}). ` +
        'Use the kensa version that wrote it, or train the model again',
      { file },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(metadata.kensa ?? '');
  } catch {
    invalid(file, 'its metadata is not JSON');
  }
  if (!isObj(parsed)) invalid(file, 'its metadata is not an object');
  const meta = legacyClassifier ? upgradeClassifierV1(parsed) : version === 1 ? upgradeV1(parsed) : parsed;
  const problem = metadataProblem(meta);
  if (problem) invalid(file, `its metadata ${problem}`);
  // a file of an older format reads as one of today's, but is rewritten whole when it changes
  return { ...(meta as unknown as ModelMetadata), format_version: legacyClassifier ? 0 : version };
}

/** The grid every network input has at a stride, when the preprocessing fixes the input size. */
export function inputGrid(p: Preprocess, stride: number): [number, number] | undefined {
  const fixed = p.tile ? { width: p.tile.size, height: p.tile.size } : fixedInputSize(p);
  return fixed ? [fixed.height / stride, fixed.width / stride] : undefined;
}

/**
 * Refuses tensors that differ from those the model was saved with (a bit flipped on disk, a copy cut
 * short and padded): the file stores the sha256 of its tensors. Files written before kensa stored it
 * have none and are checked by their statistics alone.
 */
export function checkDigest(
  tensors: ReadonlyMap<string, Tensor>,
  metadata: Record<string, string>,
  file: string,
): void {
  const stored = metadata.tensors_sha256;
  if (stored === undefined) return;
  const actual = tensorsDigest(tensors);
  if (actual !== stored)
    throw new KensaError(
      'E_FORMAT',
      `the model file is damaged: its tensors do not match the checksum stored with them (sha256 ${actual.slice(0, 12)}…, stored ${stored.slice(0, 12)}…). ` +
        'Copy the model again from where it was trained (or from a backup), or train it again',
      { file },
    );
}

export function parseModelContent(
  stored: Map<string, Tensor>,
  metadata: Record<string, string>,
  file: string,
): KensaModel {
  const meta = parseModelMetadata(metadata, file);
  checkDigest(stored, metadata, file);
  const legacyClassifier = metadata.format === CLASSIFIER_V1;
  const tensors = legacyClassifier ? classifierTensorsV1(stored) : stored;
  const method = getMethod(meta.method);
  const state = method.deserialize(tensors, methodMeta(meta), {
    channels: meta.backbone.channels,
    formatVersion: meta.format_version,
  });
  if (typeof state === 'string') invalid(file, state);
  const grid = (methodMeta(meta).grid ?? undefined) as [number, number] | undefined;
  const expected = inputGrid(meta.preprocess, method.stride);
  if (grid && expected && (grid[0] !== expected[0] || grid[1] !== expected[1]))
    invalid(file, `its grid ${grid.join('×')} does not fit the input (${expected.join('×')} cells)`);
  const scores = legacyClassifier
    ? { dtype: 'float32', shape: [0], data: new Float32Array(0) }
    : tensors.get(meta.format_version === 1 ? 'calibration.validation_scores' : 'calibration.scores');
  if (!scores || scores.dtype !== 'float32' || scores.shape.length !== 1)
    invalid(file, 'tensor calibration.scores is missing');
  let backboneOnnx: Uint8Array | undefined;
  if (meta.backbone.onnx) {
    const t = tensors.get(BACKBONE_TENSOR);
    if (!t || t.dtype !== 'uint8' || t.shape.length !== 1)
      invalid(file, `tensor ${BACKBONE_TENSOR} (the ONNX backbone ${meta.backbone.onnx.file}) is missing`);
    backboneOnnx = t.data as Uint8Array;
    if (sha256Bytes(backboneOnnx) !== meta.backbone.weights_sha256)
      invalid(file, `its ONNX backbone does not match the sha256 recorded for ${meta.backbone.onnx.file}`);
  }
  return {
    meta: { ...meta, format_version: MODEL_FORMAT_VERSION },
    state,
    calibrationScores: scores.data as Float32Array,
    ...(backboneOnnx ? { backboneOnnx } : {}),
  };
}

export async function loadModel(path: string): Promise<KensaModel> {
  const { tensors, metadata } = await readSafetensors(path, 'model file', 'Check the path given to --model');
  return parseModelContent(tensors, metadata, path);
}

/** A model's metadata alone (the header; no tensor is read). */
export async function loadModelMetadata(path: string): Promise<ModelMetadata> {
  const { metadata } = await readSafetensorsHeader(path, 'model file', 'Check the path given to --model');
  return parseModelMetadata(metadata, path);
}

/**
 * Changes a model's metadata in the model file, or in a copy of it at `target`, atomically: `change`
 * gets the validated metadata and returns the new one. Only the header is rewritten when the file is of
 * this format version and the new header fits its reserve: no tensor passes through memory. Otherwise
 * the whole file is written in today's format.
 */
export async function updateModelMetadata(
  path: string,
  change: (meta: ModelMetadata) => ModelMetadata,
  target = path,
): Promise<ModelMetadata> {
  const { metadata } = await readSafetensorsHeader(path, 'model file', 'Check the path given to --model');
  const meta = parseModelMetadata(metadata, path);
  const next = change(meta);
  const problem = metadataProblem(next as unknown as Record<string, unknown>);
  if (problem)
    throw new KensaError('E_ARGUMENT', `the change would leave a model that ${problem}`, { file: path });
  if (meta.format_version === MODEL_FORMAT_VERSION) {
    const kensa = JSON.stringify({ ...next, format_version: MODEL_FORMAT_VERSION });
    if (await rewriteSafetensorsMetadata(path, { ...metadata, kensa }, target)) return next;
  }
  // an older format, or a header without room: write the whole file in today's format
  const model = await loadModel(path);
  await saveModel(target, { ...model, meta: { ...next, [next.method]: methodMeta(model.meta) } });
  return next;
}

/**
 * Stores thresholds (merged with those the model has; a threshold given as undefined is removed) in the
 * model file, or in a copy of it at `target` (see updateModelMetadata). Returns the new thresholds.
 */
export async function updateThresholds(
  path: string,
  change: Partial<Thresholds>,
  target = path,
): Promise<Thresholds> {
  for (const [name, v] of Object.entries(change)) {
    if (v !== undefined && !Number.isFinite(v))
      throw new KensaError(
        'E_ARGUMENT',
        `Expected a finite number for the ${name} threshold but received ${v}`,
      );
  }
  const meta = await updateModelMetadata(
    path,
    (m) => {
      const thresholds = { ...m.thresholds, ...change };
      for (const [name, v] of Object.entries(change))
        if (v === undefined) delete thresholds[name as keyof Thresholds];
      return { ...m, thresholds };
    },
    target,
  );
  return meta.thresholds;
}

/** The calibration scores of a model file (one tensor read by its offset; the others stay on disk). */
export async function loadCalibrationScores(path: string): Promise<Float32Array> {
  const meta = await loadModelMetadata(path);
  if (meta.format_version === 0) return new Float32Array(0);
  const name = meta.format_version === 1 ? 'calibration.validation_scores' : 'calibration.scores';
  const t = await readSafetensorsTensor(path, name, 'model file', 'Check the path given to --model');
  if (!t || t.dtype !== 'float32' || t.shape.length !== 1) invalid(path, `tensor ${name} is missing`);
  return t.data as Float32Array;
}

/** The model file's size in bytes (for the closing lines of train). */
export async function modelFileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}
