/**
 * Training: good images only, any method. The method fits on the images' features (one streaming pass);
 * the thresholds come from calibration scores of good images the model has not seen:
 *
 *   k-fold (default, k = 5): every good image is scored by a model fitted without its fold (the method's
 *           `without`), so the zero-false-alarm threshold rests on every good image; the final model is
 *           fitted on all of them;
 *   hold-out (--val-fraction F): a seeded share of the good images is kept out of the fit and scored.
 *
 * fpr0 is the highest calibration score (no false alarm on any known-good image); the summary says which
 * image sets it, by how much it stands above the next, and what so many images can support.
 */
import { basename } from 'node:path';
import { Backbone } from '../../backbone/backbone.js';
import { parseLayers, readBackboneFile } from '../../backbone/onnx-backbone.js';
import { KENSA_VERSION } from '../../version.js';
import { DEFAULT_BACKBONE, getBackbone } from '../../backbone/registry.js';
import { trainingImages, whyNoTrainingImages, type ImageItem } from '../../data/dataset.js';
import { DEFAULT_SIZE, validatePreprocess, type Preprocess } from '../../image/preprocess.js';
import type { Fitter, MemberScore, MethodState, Scorer } from '../../models/method.js';
import { getMethod, UNSUPERVISED_METHODS } from '../../models/registry.js';
import { checkOption, checkOptions, OPTIONS } from '../../options.js';
import { KensaError } from '../../util/errors.js';
import { runProgress, type ProgressCallback } from '../../util/progress.js';
import { mulberry32, shuffledIndices } from '../../util/random.js';
import { sha256Bytes, sha256File } from '../../util/hash.js';
import { quantile } from '../../util/stats.js';
import { calibrationWarnings, summarize, type CalibrationMode } from '../contracts/calibration.js';
import { mapScale } from '../contracts/decisions.js';
import { DEFAULT_FIT_BATCH, featureBatches, scoreImages, type RunOptions } from '../engine/inspector.js';
import { fitSettings } from '../engine/memory.js';
import {
  inputGrid,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  saveModel,
  type KensaModel,
} from '../contracts/model-file.js';
import { checkNewModel, checkWritable } from '../outputs/paths.js';
import { tr } from '../../i18n.js';

/**
 * The method a new model gets where none is named: PatchCore and PaDiM scored together (the best measured
 * on both shared data sets: BENCHMARKS.md, *Separation*), except for images cut into tiles, where
 * PaDiM's Gaussians would grow with the tile's cells (a 512-pixel tile: 128×128 positions of 176×176
 * matrices) and PatchCore alone is what was measured on camera images (*High resolution*).
 */
export const DEFAULT_METHOD = 'ensemble';
/** The default method for images cut into tiles (`--tile`). */
export const DEFAULT_TILED_METHOD = 'patchcore';

/** The method a training run uses: the one named, else the default for its preprocessing. */
export function defaultMethod(preprocess: Preprocess | undefined): string {
  return preprocess?.tile ? DEFAULT_TILED_METHOD : DEFAULT_METHOD;
}
export const DEFAULT_FOLDS = 5;

export interface TrainOptions {
  /** A data folder (MVTec layout: train/good; or a plain folder of good images), or the images. */
  data: string | ImageItem[];
  /** 'ensemble', 'patchcore' or 'padim' (default: `defaultMethod`, ensemble; patchcore with tiles). */
  method?: string;
  backbone?: string;
  /**
   * A feature extractor of the user's as an ONNX file, instead of `backbone` (onnx-backbone.ts): its
   * path, and the names of its feature maps at strides 4, 8 and 16 in `layers`.
   */
  backboneOnnx?: string;
  /** With backboneOnnx: its three feature maps' names (values of the graph), strides 4, 8, 16. */
  layers?: string | string[];
  weights?: string;
  cacheDir?: string;
  /** Default: aspect ratio kept, about 224×224 pixels. */
  preprocess?: Preprocess;
  /** PaDiM: channels kept (default: the backbone's default). */
  d?: number;
  /** PatchCore: share of the training patches kept in the memory bank (default 0.1, at most BANK_ROWS_PER_IMAGE rows per image). */
  coreset?: number;
  /** PatchCore: bank rows of the image score's re-weighting (default 9; 1 = the largest patch distance). */
  neighbors?: number;
  seed?: number;
  /** Replace a model file already at `out` (default: refuse, naming what is there). */
  force?: boolean;
  /** Millimetres per original-image pixel, stored in the model (regions get sizes in mm). */
  mmPerPixel?: number;
  /** Folds of the out-of-fold calibration (default 5). */
  folds?: number;
  /** Calibrate on a held-out share of the good images instead of k-fold. */
  valFraction?: number;
  /** Quantile of the calibration scores for the 'quantile' threshold (default 0.99). */
  quantile?: number;
  batch?: number;
  pixelLimit?: number;
  /** Where to write the model file (atomically); nothing is written without it. */
  out?: string;
  onProgress?: ProgressCallback;
  /** Warnings (e.g. few training images). */
  onWarning?: (message: string) => void;
  /** Told the memory and model-size estimate before any work. */
  onPlan?: (message: string) => void;
}

export interface TrainResult {
  model: KensaModel;
  /** Images the final model was fitted on. */
  train: ImageItem[];
  /** Images scored for calibration (all readable good images with k-fold, the hold-out otherwise). */
  calibration: ImageItem[];
  /** Unreadable images that were left out (each also reported through onWarning). */
  skipped: string[];
  timings_s: Record<string, number>;
}

/** Seeded split: returns [train, validation], each in path order. */
export function splitValidation(
  items: ImageItem[],
  fraction: number,
  seed: number,
): [ImageItem[], ImageItem[]] {
  checkOption('valFraction', fraction);
  const order = shuffledIndices(items.length, mulberry32(seed ^ 0x5eed));
  const nVal = Math.max(1, Math.round(items.length * fraction));
  const val = new Set(order.slice(0, nVal));
  return [items.filter((_, i) => !val.has(i)), items.filter((_, i) => val.has(i))];
}

/**
 * Seeded assignment of n images to k folds of sizes differing by at most one. With `same` (for each image
 * the index of the first image it is an exact copy of, or its own), copies go to their original's fold:
 * an image is never scored by a fold model that holds its copy.
 */
export function assignFolds(n: number, k: number, seed: number, same?: ArrayLike<number>): Int32Array {
  const order = shuffledIndices(n, mulberry32(seed ^ 0xf01d));
  const fold = new Int32Array(n);
  let next = 0;
  for (const image of order) if (!same || same[image] === image) fold[image] = next++ % k;
  if (same) for (let i = 0; i < n; i++) fold[i] = fold[same[i]];
  return fold;
}

/**
 * Exact copies among images (the same bytes, by sha256): for each image the index of the first image it
 * copies (its own index when it is an original), and the hashes (undefined for a file that cannot be read,
 * which is reported when it is loaded).
 */
export async function findCopies(
  items: readonly ImageItem[],
): Promise<{ same: Int32Array; hashes: (string | undefined)[] }> {
  const hashes: (string | undefined)[] = [];
  for (const item of items)
    hashes.push(item.bytes ? sha256Bytes(item.bytes) : await sha256File(item.path).catch(() => undefined));
  const first = new Map<string, number>();
  const same = new Int32Array(items.length);
  hashes.forEach((h, i) => {
    const at = h === undefined ? undefined : first.get(h);
    same[i] = at ?? i;
    if (h !== undefined && at === undefined) first.set(h, i);
  });
  return { same, hashes };
}

/** The warning for exact copies among the training images, or undefined when there are none. */
export function copiesWarning(items: readonly ImageItem[], same: ArrayLike<number>): string | undefined {
  const pairs: string[] = [];
  for (let i = 0; i < items.length; i++)
    if (same[i] !== i) pairs.push(`${items[i].path} = ${items[same[i]].path}`);
  if (!pairs.length) return undefined;
  const list = `${pairs.slice(0, 5).join('; ')}${pairs.length > 5 ? tr(`; and ${pairs.length - 5} more`, `。ほか ${pairs.length - 5} 組`) : ''}`;
  return tr(
    `${pairs.length} training image${pairs.length === 1 ? ' is an exact copy' : 's are exact copies'} of another (the same bytes): ${list}. ` +
      'A copy adds nothing the model has not seen but weighs twice in it; each is kept in the calibration fold of its original. ' +
      'Remove the copies from the training images unless they were meant',
    `学習画像 ${pairs.length} 枚がほかの画像の完全なコピーです（同じバイト列）: ${list}。` +
      'コピーはモデルに新しいことを何も加えず、二重に効きます。各コピーは元の画像と同じ校正分割に入れました。' +
      '意図したものでなければ学習画像から除いてください',
  );
}

/** Checks the options that need no file or network, before any work. */
function checkTrainOptions(options: TrainOptions): void {
  const method = getMethod(options.method ?? defaultMethod(options.preprocess));
  if (method.learning !== 'unsupervised')
    throw new KensaError(
      'E_ARGUMENT',
      `--method ${method.name} learns from good and NG images: train it with kensa classify train. kensa train fits ${UNSUPERVISED_METHODS.join(' or ')} on good images only`,
    );
  if (options.backboneOnnx !== undefined) {
    if (options.backbone !== undefined || options.weights !== undefined)
      throw new KensaError(
        'E_ARGUMENT',
        `--backbone-onnx brings the network and its weights; leave out ${options.backbone !== undefined ? '--backbone' : '--weights'}`,
      );
    if (options.layers === undefined)
      throw new KensaError(
        'E_ARGUMENT',
        '--backbone-onnx needs --layers: the names of the three feature maps in the file, at strides 4, 8 and 16',
        { file: options.backboneOnnx },
      );
    parseLayers(options.layers, options.backboneOnnx);
  } else {
    if (options.layers !== undefined)
      throw new KensaError(
        'E_ARGUMENT',
        '--layers names the feature maps of a network given with --backbone-onnx',
      );
    getBackbone(options.backbone ?? DEFAULT_BACKBONE);
  }
  validatePreprocess(options.preprocess ?? { mode: 'fit', size: DEFAULT_SIZE });
  checkOptions(options, [
    'seed',
    'folds',
    'quantile',
    'batch',
    'pixelLimit',
    'coreset',
    'neighbors',
    'd',
    'mmPerPixel',
  ]);
  if (options.valFraction !== undefined) {
    if (options.folds !== undefined)
      throw new KensaError(
        'E_ARGUMENT',
        'use either --folds (k-fold calibration) or --val-fraction (hold-out), not both',
      );
    splitValidation([], options.valFraction, 0);
  }
}

interface Scored {
  item: ImageItem;
  score: number;
  members?: MemberScore[];
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const lap = (name: string, since: number) => (timings[name] = (performance.now() - since) / 1000);
  checkTrainOptions(options);
  const method = getMethod(options.method ?? defaultMethod(options.preprocess));
  const spec =
    options.backboneOnnx === undefined ? getBackbone(options.backbone ?? DEFAULT_BACKBONE) : undefined;
  // read before any work, so that a missing or unusable file is told at once
  const onnxBytes =
    options.backboneOnnx === undefined ? undefined : await readBackboneFile(options.backboneOnnx);
  const preprocess = validatePreprocess(options.preprocess ?? { mode: 'fit', size: DEFAULT_SIZE });
  const seed = options.seed ?? 0;
  const q = options.quantile ?? OPTIONS.quantile.default;
  if (options.out) {
    await checkNewModel(options.out, options.force, 'kensa train');
    await checkWritable(options.out, 'file');
  }
  const items =
    typeof options.data === 'string'
      ? trainingImages(options.data, { onWarning: options.onWarning })
      : options.data;
  const where = typeof options.data === 'string' ? options.data : 'the given list';
  if (items.length === 0) {
    throw new KensaError(
      'E_NOT_FOUND',
      `no training images found: ${typeof options.data === 'string' ? whyNoTrainingImages(options.data) : 'the list is empty'}`,
      { file: where },
    );
  }
  const holdout = options.valFraction !== undefined;
  const k = holdout ? 0 : Math.min(options.folds ?? DEFAULT_FOLDS, items.length);
  const { same, hashes } = await findCopies(items);
  const copies = copiesWarning(items, same);
  if (copies) options.onWarning?.(copies);
  const [fitItems, validation] = holdout ? splitValidation(items, options.valFraction!, seed) : [items, []];
  const folds = holdout ? undefined : assignFolds(items.length, k, seed, same);
  const foldSizes = new Array<number>(k).fill(0);
  folds?.forEach((f) => foldSizes[f]++);
  const leastFit = holdout ? fitItems.length : items.length - Math.max(...foldSizes);
  if (leastFit < 2) {
    const distinct = same.filter((v, i) => v === i).length;
    throw new KensaError(
      'E_ARGUMENT',
      `training needs at least 2 images to fit on while the others are scored for calibration; ${items.length} good images were given` +
        `${distinct < items.length ? ` (${distinct} distinct: the others are exact copies)` : ''}. Add good images`,
      { file: where },
    );
  }

  let s = performance.now();
  const backbone = onnxBytes
    ? await Backbone.fromOnnx(onnxBytes, parseLayers(options.layers!), options.backboneOnnx!)
    : await Backbone.load(spec!.name, {
        weights: options.weights,
        cacheDir: options.cacheDir,
        onProgress: options.onProgress,
      });
  lap('load_backbone', s);
  let fitter: Fitter | undefined;
  try {
    const channels = backbone.channels;
    const settings = await fitSettings(method, {
      channels,
      preprocess,
      items: fitItems,
      grid: inputGrid(preprocess, method.stride),
      seed,
      d: options.d,
      coreset: options.coreset,
      neighbors: options.neighbors,
      // a network of the user's: every channel, as for EfficientNet-Lite (--d chooses fewer)
      defaultD: spec?.defaultD ?? channels[0] + channels[1] + channels[2],
      batch: options.batch ?? DEFAULT_FIT_BATCH,
      pixelLimit: options.pixelLimit,
      carriedBytes: onnxBytes?.length,
      onWarning: options.onWarning,
      onPlan: options.onPlan,
    });
    fitter = method.createFitter(settings);
    const inputSize =
      method.fixedGrid && settings.grid
        ? { height: settings.grid[0] * method.stride, width: settings.grid[1] * method.stride }
        : undefined;
    const skipped: string[] = [];
    const skippedSet = new Set<string>();
    const onError = (item: ImageItem, error: Error) => {
      if (skippedSet.has(item.path)) return;
      skippedSet.add(item.path);
      skipped.push(item.path);
      options.onWarning?.(`${tr('skipping an image', '画像を飛ばします')}: ${error.message}`);
    };
    const run: RunOptions = {
      batch: options.batch ?? DEFAULT_FIT_BATCH,
      pixelLimit: options.pixelLimit,
      onError,
      inputSize,
    };
    const timing = { backbone: 0, method: 0 };

    // the run's image passes: the fit, then every calibration image scored once
    const runAt = runProgress(
      fitItems.length + (holdout ? validation.length : items.length),
      options.onProgress,
    );
    s = performance.now();
    let used = 0;
    for await (const batch of featureBatches(
      backbone,
      fitItems,
      preprocess,
      { ...run, timing },
      method.stride,
    )) {
      const m0 = performance.now();
      await fitter.add(batch.features, batch.images, batch.owned);
      timing.method += (performance.now() - m0) / 1000;
      used = batch.completed;
      runAt(0)({
        task: `train (${method.name}): features`,
        done: used + skipped.length,
        total: fitItems.length,
        unit: 'images',
      });
    }
    if (used < 2) {
      throw new KensaError(
        'E_ARGUMENT',
        `training needs at least 2 readable images; ${used} could be read (${skipped.length} skipped)`,
        { file: where },
      );
    }
    lap('fit_features', s);
    timings.fit_backbone = timing.backbone;
    timings.fit_method = timing.method;

    const scored: Scored[] = [];
    const lows: number[] = [];
    const scoreWith = async (scorer: Scorer, list: ImageItem[], task: string) => {
      const split = { backbone: 0, method: 0 };
      try {
        for await (const r of scoreImages(backbone, scorer, method.map, preprocess, list, {
          ...run,
          batch: options.batch,
          timing: split,
          onProgress: runAt(fitItems.length + scored.length),
          task,
        })) {
          // the heat maps' display range starts at the typical minimum of good maps (on the score's scale)
          let low = Infinity;
          for (let i = 0; i < r.map.length; i++) if (r.map[i] < low) low = r.map[i];
          lows.push(low * mapScale(r));
          scored.push({ item: r.item, score: r.score, members: r.members });
        }
      } finally {
        await scorer.release();
      }
      timings.calibration_backbone = (timings.calibration_backbone ?? 0) + split.backbone;
      timings.calibration_method = (timings.calibration_method ?? 0) + split.method;
    };

    let state: MethodState;
    let mode: CalibrationMode = holdout ? 'holdout' : 'kfold';
    const steps = (task: string) => (done: number, total: number) =>
      runAt(fitItems.length + scored.length)({ task, done, total, unit: 'steps' });
    const finish = async () => {
      s = performance.now();
      const fitted = await fitter!.finish(steps(`train: ${method.name} model`));
      lap('fit_finish', s);
      return fitted;
    };
    s = performance.now();
    // leave-one-out where the method has it (and the user asked for no folds): every image scored as new
    const loo =
      folds && options.folds === undefined && fitter.leaveOneOut
        ? await fitter.leaveOneOut(steps('train: leave-one-out model'))
        : undefined;
    if (loo) {
      mode = 'loo';
      const list = items.filter((i) => !skippedSet.has(i.path));
      await scoreWith(loo, list, 'train: calibration (leave-one-out)');
      lap('calibration', s);
      state = await finish();
    } else if (folds) {
      for (let f = 0; f < k; f++) {
        const indices = items
          .map((_, i) => i)
          .filter((i) => folds[i] === f && !skippedSet.has(items[i].path));
        const list = indices.map((i) => items[i]);
        const fold = {
          images: new Set(indices),
          features: async function* () {
            for await (const b of featureBatches(backbone, list, preprocess, run, method.stride))
              yield { features: b.features, images: b.images.map((i) => indices[i]) };
          },
        };
        await scoreWith(
          await fitter.without(fold, steps(`train: fold ${f + 1}/${k} model`)),
          list,
          `train: calibration, fold ${f + 1}/${k}`,
        );
      }
      lap('calibration', s);
      state = await finish();
    } else {
      state = await finish();
      s = performance.now();
      await scoreWith(await method.openScorer(state), validation, 'train: calibration (hold-out)');
      lap('calibration', s);
    }
    if (scored.length === 0) {
      throw new KensaError(
        'E_ARGUMENT',
        'no calibration image could be read, so the thresholds cannot be calibrated; add readable good images',
        { file: where },
      );
    }
    // a method that weighs its members by the calibration (the ensemble) sets those weights now, from the
    // calibration images' member scores, and gives those images' scores under them
    if (method.weigh) {
      if (scored.some((r) => !r.members))
        throw new KensaError('E_RUNTIME', `the ${method.name} scorer gave no member scores to weigh`);
      const weighed = method.weigh(
        state,
        scored.map((r) => r.members!),
      );
      state = weighed.state;
      scored.forEach((r, i) => (r.score = weighed.scores[i]));
      lows.splice(0, lows.length, ...weighed.lows);
    }
    // a method's own steps taken on the way (PatchCore's coreset, taken with the first fold) are its own
    for (const [name, seconds] of Object.entries(fitter.timings ?? {})) {
      timings[name] = seconds;
      if (timings.calibration !== undefined && mode !== 'holdout') timings.calibration -= seconds;
    }
    const hashOf = new Map(items.map((item, i) => [item.path, hashes[i]?.slice(0, 16)]));
    // the thresholds from the scores as the model stores them (float32): kensa threshold recomputes them
    // from those, and gets the same values back
    const stored = Float32Array.from(scored.map((r) => r.score));
    const { calibration, thresholds } = summarize(stored, {
      mode,
      ...(mode === 'kfold' ? { folds: k } : {}),
      quantile: q,
      display: [quantile(lows, 0.5), 1.5 * Math.max(...stored)],
      images: scored.map((r) => ({
        file: r.item.path,
        ...(hashOf.get(r.item.path) ? { sha256: hashOf.get(r.item.path) } : {}),
      })),
    });
    const fitted = folds
      ? items.filter((i) => !skippedSet.has(i.path))
      : fitItems.filter((i) => !skippedSet.has(i.path));
    const model: KensaModel = {
      meta: {
        format: MODEL_FORMAT,
        format_version: MODEL_FORMAT_VERSION,
        method: method.name,
        kensa_version: KENSA_VERSION,
        backbone: {
          name: backbone.name,
          weights_sha256: backbone.weights?.sha256 ?? '',
          weights_official: backbone.weights?.official ?? false,
          channels,
          ...(onnxBytes
            ? {
                onnx: {
                  file: basename(options.backboneOnnx!),
                  layers: parseLayers(options.layers!),
                  bytes: onnxBytes.length,
                },
              }
            : {}),
        },
        preprocess,
        map: method.map,
        training: {
          train_images: fitted.length,
          skipped: skipped.length,
          seed,
          ...(mode === 'kfold' ? { folds: k } : {}),
          ...(mode === 'holdout'
            ? { validation_fraction: options.valFraction, validation_images: scored.length }
            : {}),
        },
        calibration,
        thresholds,
        ...(options.mmPerPixel !== undefined ? { mm_per_pixel: options.mmPerPixel } : {}),
        ...{ [method.name]: method.describe(state) },
      },
      state,
      calibrationScores: stored,
      ...(onnxBytes ? { backboneOnnx: onnxBytes } : {}),
    };
    for (const w of calibrationWarnings(calibration)) options.onWarning?.(w);
    if (options.out) {
      s = performance.now();
      await saveModel(options.out, model);
      lap('write_model', s);
    }
    lap('total', t0);
    return {
      model,
      train: fitted,
      calibration: scored.map((r) => r.item),
      skipped,
      timings_s: timings,
    };
  } finally {
    await fitter?.release();
    await backbone.dispose();
  }
}
