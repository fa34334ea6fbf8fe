/**
 * The classifier's model file: safetensors with the head's tensors (standardisation mean and std, weights)
 * and a JSON metadata block (format `kensa-classifier`): backbone and its weights' sha256, preprocessing,
 * map settings for the class activation maps, the head's bias and temperature, the training summary and
 * per-epoch history, calibration errors, the thresholds (probabilities) and the heat map's range.
 */
import type { ModelBackbone } from '../../backbone/registry.js';
import { readSafetensors, writeSafetensors } from '../../io/safetensors.js';
import type { Preprocess } from '../../image/preprocess.js';
import type { MapSettings } from '../../postprocess/anomaly-map.js';
import { KensaError } from '../../util/errors.js';
import type { EpochRecord, HeadParams } from './head.js';

export const CLASSIFIER_FORMAT = 'kensa-classifier';
export const CLASSIFIER_FORMAT_VERSION = 1;

export interface ClassifierThresholds {
  /** The probability at which no good validation image is NG. */
  fpr0: number;
  /** The probability with the best F1 on the validation images (needs NG images there). */
  f1?: number;
}

export interface ClassifierMeta {
  format: typeof CLASSIFIER_FORMAT;
  format_version: number;
  method: 'classifier';
  kensa_version: string;
  backbone: ModelBackbone;
  preprocess: Preprocess;
  map: MapSettings;
  features: { dim: number; stride: number; pooling: 'mean' };
  head: { bias: number; temperature: number };
  training: {
    good: number;
    ng: number;
    categories: Record<string, number>;
    validation: { good: number; ng: number };
    augment: string[];
    copies: number;
    epochs: number;
    best_epoch: number;
    learning_rate: number;
    weight_decay: number;
    patience: number;
    seed: number;
    skipped: number;
  };
  history: EpochRecord[];
  calibration: { temperature: number; ece_before: number | null; ece_after: number | null };
  thresholds: ClassifierThresholds;
  /** The class activation map's colour range (raw logit units). */
  display: [number, number];
}

export interface ClassifierModel {
  meta: ClassifierMeta;
  head: HeadParams;
}

export async function saveClassifier(path: string, model: ClassifierModel): Promise<void> {
  const { head } = model;
  const C = head.weight.length;
  await writeSafetensors(
    path,
    [
      ['head.mean', { dtype: 'float32', shape: [C], data: head.mean }],
      ['head.std', { dtype: 'float32', shape: [C], data: head.std }],
      ['head.weight', { dtype: 'float32', shape: [C], data: head.weight }],
    ],
    {
      format: CLASSIFIER_FORMAT,
      format_version: String(CLASSIFIER_FORMAT_VERSION),
      kensa: JSON.stringify(model.meta),
    },
  );
}

export async function loadClassifier(path: string): Promise<ClassifierModel> {
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata.format === 'kensa-model')
    throw new KensaError(
      'E_FORMAT',
      'this is an anomaly model (kensa train), not a classifier: use kensa test / kensa predict with it',
      { file: path },
    );
  if (metadata.format !== CLASSIFIER_FORMAT)
    throw new KensaError('E_FORMAT', 'not a kensa classifier file (kensa classify train writes them)', {
      file: path,
    });
  if (Number(metadata.format_version) !== CLASSIFIER_FORMAT_VERSION)
    throw new KensaError(
      'E_FORMAT',
      `classifier format version ${metadata.format_version} is not supported by this kensa; train it again`,
      { file: path },
    );
  let meta: ClassifierMeta;
  try {
    meta = JSON.parse(metadata.kensa ?? '') as ClassifierMeta;
  } catch {
    throw new KensaError('E_FORMAT', 'the classifier’s metadata is not JSON (the file is damaged)', {
      file: path,
    });
  }
  const get = (name: string) => {
    const t = tensors.get(name);
    if (!t || t.dtype !== 'float32' || t.shape.length !== 1 || t.shape[0] !== meta.features?.dim)
      throw new KensaError('E_FORMAT', `the classifier lacks a valid ${name} tensor (the file is damaged)`, {
        file: path,
      });
    return t.data as Float32Array;
  };
  if (!Number.isFinite(meta.thresholds?.fpr0) || !Number.isFinite(meta.head?.temperature))
    throw new KensaError('E_FORMAT', 'the classifier’s metadata lacks its thresholds (the file is damaged)', {
      file: path,
    });
  return {
    meta,
    head: {
      mean: get('head.mean'),
      std: get('head.std'),
      weight: get('head.weight'),
      bias: meta.head.bias,
      temperature: meta.head.temperature,
    },
  };
}
