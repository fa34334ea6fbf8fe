/**
 * Option parsing shared by the verbs: numbers with their ranges, preprocessing, thresholds — each with
 * one wording: "Expected <what> for <option> but received '<value>'". A bad value is a usage error
 * (exit code 2) before any work starts.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_OVERLAP, DEFAULT_SIZE, type Preprocess } from '../image/preprocess.js';
import { OPTIONS, fits, optionError, type OptionName, type OptionSpec } from '../options.js';
import { language, type Language } from '../i18n.js';
import {
  checkThresholdValue,
  DISTANCE_RANGE,
  MIN_THRESHOLD,
  THRESHOLD_CHOICES,
  thresholdExpectation,
  type ThresholdChoice,
} from '../pipeline/contracts/decisions.js';

const expected = (what: string, name: string, value: string) =>
  new InvalidArgumentError(`Expected ${what} for ${name} but received '${value}'`);

/** The language of help texts: --lang, else the locale's (src/i18n.ts). */
export const helpLanguage = (): Language => language();

/** The parser of a numeric option from the table (src/options.ts): its range, its one wording. */
export function parserOf(spec: OptionSpec): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !fits(spec, n))
      throw new InvalidArgumentError(optionError(spec, spec.flag, `'${value}'`).message);
    return n;
  };
}

/** Adds options of the table to a command, in order; returns the command. */
export function addOptions(command: Command, names: readonly OptionName[]): Command {
  for (const name of names) addOption(command, name);
  return command;
}

/** Adds an option of the table to a command: flag, value name, help in the user's language, parser, default. */
export function addOption(command: Command, name: OptionName, overrides: { help?: string } = {}): Command {
  const spec: OptionSpec = OPTIONS[name];
  const option = new Option(
    `${spec.flag} ${spec.value}`,
    overrides.help ?? spec.help[helpLanguage()],
  ).argParser(parserOf(spec));
  if (spec.default !== undefined) option.default(spec.default);
  // the library's name for it, when the flag would give commander another (--queue → queueLimit)
  const camel = spec.flag.slice(2).replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
  if (camel !== name) option.attributeName = () => name;
  return command.addOption(option);
}

/** A threshold value a user gives (a distance: at least MIN_THRESHOLD). */
export const thresholdValue = (name: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < MIN_THRESHOLD)
    throw expected(`a number of at least ${MIN_THRESHOLD}`, name, value);
  return n;
};

/**
 * --threshold: a stored threshold's name or a number within a method's score range (default: a distance),
 * the range as the library checks it (pipeline/contracts/decisions.ts).
 */
export const thresholdFor =
  (range: readonly [number, number] = DISTANCE_RANGE) =>
  (value: string): ThresholdChoice => {
    const named = THRESHOLD_CHOICES.find((c) => c === value);
    if (named) return named;
    const n = Number(value);
    try {
      if (value.trim() === '') throw new Error('empty');
      return checkThresholdValue(n, '--threshold', range);
    } catch {
      throw new InvalidArgumentError(
        `Expected ${THRESHOLD_CHOICES.join(', ')} or ${thresholdExpectation(range)} for --threshold but received '${value}'`,
      );
    }
  };

export const threshold = thresholdFor();

/**
 * A threshold as the summary shows it: three decimals for a score; four significant digits for a
 * probability (a classifier's fpr0 of 0.99976 would read "1.000"), more where those still round to 1.
 */
export function thresholdText(t: number): string {
  if (!(t < 1)) return t.toFixed(3);
  for (let digits = 4; digits < 10; digits++) {
    const text = t.toPrecision(digits);
    if (Number(text) < 1) return text;
  }
  return t.toPrecision(10);
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
