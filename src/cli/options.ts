/**
 * Option parsing shared by the verbs: numbers with their ranges, preprocessing, thresholds — each with
 * one wording: "Expected <what> for <option> but received '<value>'". A bad value is a usage error
 * (exit code 2) before any work starts.
 */
import { InvalidArgumentError } from 'commander';
import { PIXEL_LIMIT_RANGE } from '../image/load.js';
import { DEFAULT_OVERLAP, DEFAULT_SIZE, type Preprocess } from '../image/preprocess.js';
import { MIN_THRESHOLD, THRESHOLD_CHOICES, type ThresholdChoice } from '../pipeline/contracts/decisions.js';

const expected = (what: string, name: string, value: string) =>
  new InvalidArgumentError(`Expected ${what} for ${name} but received '${value}'`);

/** An integer in [min, max]. */
export const integer =
  (name: string, min = -Infinity, max = Infinity) =>
  (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
      const range =
        min === -Infinity
          ? 'an integer'
          : max === Infinity
            ? `an integer of at least ${min}`
            : `an integer between ${min} and ${max}`;
      throw expected(range, name, value);
    }
    return n;
  };

/** A number in the interval described by `what` and checked by `ok`. */
const number =
  (name: string, what: string, ok: (n: number) => boolean) =>
  (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || !ok(n)) throw expected(what, name, value);
    return n;
  };

export const fraction = (name: string) => number(name, 'a number in (0, 1)', (n) => n > 0 && n < 1);
export const probability = (name: string) => number(name, 'a number in (0, 1]', (n) => n > 0 && n <= 1);
export const scale = number('--scale', 'a number between 0.015625 and 4', (n) => n >= 1 / 64 && n <= 4);

/** Options every verb that reads images shares. */
export const batch = integer('--batch', 1, 4096);
export const pixelLimit = integer('--pixel-limit', PIXEL_LIMIT_RANGE[0], PIXEL_LIMIT_RANGE[1]);

export const thresholdValue = (name: string) =>
  number(name, `a number of at least ${MIN_THRESHOLD}`, (n) => n >= MIN_THRESHOLD);

export function threshold(value: string): ThresholdChoice {
  const named = THRESHOLD_CHOICES.find((c) => c === value);
  if (named) return named;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < MIN_THRESHOLD) {
    throw new InvalidArgumentError(
      `Expected fpr0, f1, quantile, custom or a number of at least ${MIN_THRESHOLD} for --threshold but received '${value}'`,
    );
  }
  return n;
}

/** --tile's default overlap: 96 pixels, or less than half a small tile (a multiple of 16). */
const overlapDefault = (tile: number) => Math.min(DEFAULT_OVERLAP, Math.floor(tile / 32) * 16);

export interface PreprocessOptions {
  size?: number;
  square?: boolean;
  resize?: number;
  crop?: number;
  scale?: number;
  tile?: number;
  overlap?: number;
}

/**
 * The preprocessing the options ask for: aspect kept at about --size² pixels (default), --square,
 * --resize with --crop, or --scale; --tile (with --overlap) on top. --tile alone means native resolution.
 */
export function preprocessFrom(o: PreprocessOptions): Preprocess {
  const modes = [
    o.square ? '--square' : '',
    o.resize !== undefined || o.crop !== undefined ? '--resize/--crop' : '',
    o.scale !== undefined ? '--scale' : '',
  ].filter(Boolean);
  if (modes.length > 1) throw new InvalidArgumentError(`use one of ${modes.join(', ')}, not several`);
  if (o.overlap !== undefined && o.tile === undefined)
    throw new InvalidArgumentError('--overlap goes with --tile');
  const tile =
    o.tile !== undefined ? { tile: { size: o.tile, overlap: o.overlap ?? overlapDefault(o.tile) } } : {};
  if (o.resize !== undefined || o.crop !== undefined) {
    if (o.resize === undefined || o.crop === undefined)
      throw new InvalidArgumentError('--resize and --crop go together (e.g. --resize 256 --crop 224)');
    if (o.size !== undefined)
      throw new InvalidArgumentError('use either --size or --resize with --crop, not both');
    return { mode: 'crop', resize: o.resize, crop: o.crop, ...tile };
  }
  if (o.scale !== undefined) {
    if (o.size !== undefined) throw new InvalidArgumentError('use either --size or --scale, not both');
    return { mode: 'scale', scale: o.scale, ...tile };
  }
  if (o.square) return { mode: 'resize', size: o.size ?? DEFAULT_SIZE, ...tile };
  if (o.tile !== undefined && o.size === undefined) return { mode: 'scale', scale: 1, ...tile };
  return { mode: 'fit', size: o.size ?? DEFAULT_SIZE, ...tile };
}

/** One of a fixed list of names. */
export const choice =
  <T extends string>(name: string, choices: readonly T[]) =>
  (value: string): T => {
    const found = choices.find((c) => c === value);
    if (!found) throw expected(`one of ${choices.join(', ')}`, name, value);
    return found;
  };
