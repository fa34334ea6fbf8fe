/**
 * Training: good images only. A seeded fraction of them is held out as validation; the rest fit the
 * per-position Gaussians; the validation scores give the thresholds (fpr0: no false alarm on known-good
 * images; a quantile). Writes one model file.
 */
import { readFileSync } from 'node:fs';
import { Backbone } from '../backbone/backbone.js';
import { DEFAULT_BACKBONE, getBackbone } from '../backbone/registry.js';
import { trainingImages, type ImageItem } from '../data/dataset.js';
import { DEFAULT_SIZE, inputSize, validatePreprocess, type Preprocess } from '../image/preprocess.js';
import { chooseChannels, mulberry32 } from '../models/padim/embedding.js';
import { EPSILON, GaussianFitter } from '../models/padim/model.js';
import { KensaError, invalidParameter } from '../util/errors.js';
import type { ProgressCallback } from '../util/progress.js';
import { mean, quantile } from '../util/stats.js';
import { DEFAULT_BATCH, loadBatches, scoreGraphFor, scoreWith, SIGMA, stackTensors } from './inspector.js';
import { MODEL_FORMAT, MODEL_FORMAT_VERSION, saveModel, type KensaModel } from './model-file.js';

/** Images per backbone batch while fitting (validation scoring uses the inspector's default). */
export const DEFAULT_FIT_BATCH = 16;

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
export const KENSA_VERSION = pkg.version;

export interface TrainOptions {
  /** A data folder (MVTec layout: train/good; or a plain folder of good images), or the images. */
  data: string | ImageItem[];
  backbone?: string;
  weights?: string;
  cacheDir?: string;
  preprocess?: Preprocess;
  /** Channels kept (default: the backbone's default). */
  d?: number;
  seed?: number;
  /** Held-out share of the good images for calibration (default 0.1). */
  valFraction?: number;
  /** Quantile of the validation scores for the 'quantile' threshold (default 0.99). */
  quantile?: number;
  batch?: number;
  pixelLimit?: number;
  /** Where to write the model file (atomically); nothing is written without it. */
  out?: string;
  onProgress?: ProgressCallback;
  /** Warnings (e.g. few training images). */
  onWarning?: (message: string) => void;
}

export interface TrainResult {
  model: KensaModel;
  train: ImageItem[];
  validation: ImageItem[];
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
  if (!(fraction >= 0 && fraction < 1))
    throw invalidParameter('val-fraction', 'a number in [0, 1)', fraction);
  const order = items.map((_, i) => i);
  const rand = mulberry32(seed ^ 0x5eed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const nVal = Math.max(1, Math.round(items.length * fraction));
  const val = new Set(order.slice(0, nVal));
  return [items.filter((_, i) => !val.has(i)), items.filter((_, i) => val.has(i))];
}

export async function train(options: TrainOptions): Promise<TrainResult> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const lap = (name: string, since: number) => (timings[name] = (performance.now() - since) / 1000);
  const spec = getBackbone(options.backbone ?? DEFAULT_BACKBONE);
  const preprocess = validatePreprocess(options.preprocess ?? { mode: 'resize', size: DEFAULT_SIZE });
  const seed = options.seed ?? 0;
  const valFraction = options.valFraction ?? 0.1;
  const q = options.quantile ?? 0.99;
  // Fitting gathers its own chunks of images, so small backbone batches cost nothing and save memory.
  const batch = options.batch ?? DEFAULT_FIT_BATCH;
  const items = typeof options.data === 'string' ? trainingImages(options.data) : options.data;
  const where = typeof options.data === 'string' ? options.data : 'the given list';
  if (items.length === 0) {
    throw new KensaError(
      'E_NOT_FOUND',
      'no training images found (expected train/good/*.png|jpg|bmp|tif or images in the folder)',
      {
        file: where,
      },
    );
  }
  const [trainItems, validation] = splitValidation(items, valFraction, seed);
  if (trainItems.length < 2) {
    throw new KensaError(
      'E_ARGUMENT',
      `training needs at least 2 images after holding out validation; ${trainItems.length} remain`,
      { file: where },
    );
  }

  let s = performance.now();
  const backbone = await Backbone.load(spec.name, {
    weights: options.weights,
    cacheDir: options.cacheDir,
    onProgress: options.onProgress,
  });
  lap('load_backbone', s);
  try {
    const channels = backbone.channels;
    const total = channels[0] + channels[1] + channels[2];
    const d = options.d ?? Math.min(spec.defaultD, total);
    if (!Number.isInteger(d) || d < 1 || d > total)
      throw invalidParameter('d', `integer between 1 and ${total}`, d);
    if (trainItems.length < d) {
      options.onWarning?.(
        `${trainItems.length} training images for ${d} channels: the covariances rest largely on the ε·I regulariser; ` +
          `more good images (≥ ${d}) give a more stable model`,
      );
    }
    const size = inputSize(preprocess);
    const layout = { channels, index: chooseChannels(total, d, seed), height: size / 4, width: size / 4 };

    s = performance.now();
    const fitter = new GaussianFitter(layout);
    const skipped: string[] = [];
    const onError = (item: ImageItem, error: Error) => {
      skipped.push(item.path);
      options.onWarning?.(`skipping an unreadable image: ${error.message}`);
    };
    let done: number;
    let used = 0;
    let tFeatures = 0;
    let tStats = 0;
    for await (const loaded of loadBatches(trainItems, preprocess, batch, {
      onError,
      pixelLimit: options.pixelLimit,
    })) {
      const f0 = performance.now();
      const maps = await backbone.extract(
        stackTensors(loaded.map((l) => l.image)),
        loaded.length,
        size,
        size,
      );
      const f1 = performance.now();
      tFeatures += f1 - f0;
      await fitter.add(maps);
      tStats += performance.now() - f1;
      used += loaded.length;
      done = used + skipped.length;
      options.onProgress?.({
        task: 'train: features + statistics',
        done,
        total: trainItems.length,
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
    const f2 = performance.now();
    const stats = await fitter.finish((done, total) =>
      options.onProgress?.({ task: 'train: inverting covariances', done, total, unit: 'positions' }),
    );
    timings.fit_finish = (performance.now() - f2) / 1000;
    lap('fit_total', s);
    timings.fit_backbone = tFeatures / 1000;
    timings.fit_statistics = tStats / 1000 + timings.fit_finish;

    s = performance.now();
    const scores: number[] = [];
    const minima: number[] = [];
    const split = { backbone: 0, padim: 0 };
    const graph = await scoreGraphFor(stats, preprocess);
    try {
      for await (const r of scoreWith(backbone, graph, preprocess, validation, {
        batch: options.batch ?? DEFAULT_BATCH,
        onProgress: options.onProgress,
        task: 'train: validation',
        timing: split,
        onError,
        pixelLimit: options.pixelLimit,
      })) {
        scores.push(r.score);
        let m = Infinity;
        for (let i = 0; i < r.map.length; i++) if (r.map[i] < m) m = r.map[i];
        minima.push(m);
      }
    } finally {
      await graph.release();
    }
    lap('validation', s);
    timings.validation_backbone = split.backbone;
    timings.validation_padim = split.padim;
    if (scores.length === 0) {
      throw new KensaError(
        'E_ARGUMENT',
        'no validation image could be read, so the thresholds cannot be calibrated; add readable good images',
        { file: where },
      );
    }
    const fpr0 = Math.max(...scores);
    const validationScores = Float32Array.from(scores);
    const model: KensaModel = {
      meta: {
        format: MODEL_FORMAT,
        format_version: MODEL_FORMAT_VERSION,
        method: 'padim',
        kensa_version: KENSA_VERSION,
        backbone: {
          name: spec.name,
          weights_sha256: backbone.weights?.sha256 ?? '',
          weights_official: backbone.weights?.official ?? false,
          channels,
        },
        preprocess,
        padim: { d, seed, epsilon: EPSILON, sigma: SIGMA, grid: [layout.height, layout.width] },
        training: {
          train_images: used,
          validation_images: scores.length,
          validation_fraction: valFraction,
          seed,
        },
        calibration: {
          quantile: q,
          validation: {
            count: scores.length,
            min: Math.min(...scores),
            median: quantile(scores, 0.5),
            mean: mean(scores),
            max: fpr0,
          },
          display: [quantile(minima, 0.5), 1.5 * fpr0],
        },
        thresholds: { fpr0, quantile: quantile(scores, q) },
      },
      stats,
      validationScores,
    };
    if (options.out) {
      s = performance.now();
      await saveModel(options.out, model);
      lap('write_model', s);
    }
    lap('total', t0);
    return { model, train: trainItems, validation, skipped, timings_s: timings };
  } finally {
    await backbone.dispose();
  }
}
