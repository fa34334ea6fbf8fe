/** Option parsing shared by the verbs: numbers, preprocessing, thresholds — each with one error wording. */
import { InvalidArgumentError } from 'commander';
import { DEFAULT_SIZE, type Preprocess } from '../image/preprocess.js';
import { THRESHOLD_CHOICES, type ThresholdChoice } from '../pipeline/predict.js';

export const integer = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n))
    throw new InvalidArgumentError(`Expected an integer for ${name} but received '${value}'`);
  return n;
};

export const fraction = (name: string) => (value: string) => {
  const n = Number(value);
  if (!(n >= 0 && n < 1))
    throw new InvalidArgumentError(`Expected a number in [0, 1) for ${name} but received '${value}'`);
  return n;
};

export const probability = (name: string) => (value: string) => {
  const n = Number(value);
  if (!(n > 0 && n <= 1))
    throw new InvalidArgumentError(`Expected a number in (0, 1] for ${name} but received '${value}'`);
  return n;
};

export function threshold(value: string): ThresholdChoice {
  const named = THRESHOLD_CHOICES.find((c) => c === value);
  if (named) return named;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) {
    throw new InvalidArgumentError(
      `Expected fpr0, f1, quantile, custom or a number for --threshold but received '${value}'`,
    );
  }
  return n;
}

export function preprocessFrom(o: { size?: number; resize?: number; crop?: number }): Preprocess {
  if (o.resize !== undefined || o.crop !== undefined) {
    if (o.resize === undefined || o.crop === undefined)
      throw new InvalidArgumentError('--resize and --crop go together (e.g. --resize 256 --crop 224)');
    if (o.size !== undefined)
      throw new InvalidArgumentError('use either --size or --resize with --crop, not both');
    return { mode: 'crop', resize: o.resize, crop: o.crop };
  }
  return { mode: 'resize', size: o.size ?? DEFAULT_SIZE };
}
