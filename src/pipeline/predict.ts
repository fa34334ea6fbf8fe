/**
 * kensa predict: inspects new images with a trained model and writes predictions.csv and
 * predictions.json (score, normalised score, OK/NG verdict, defect regions as boxes in original
 * pixels), ng_list.txt, and a heat-map overlay per image. No labels needed, no re-training.
 */
import { join } from 'node:path';
import { collectImages, type ImageItem } from '../data/dataset.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeCsv, writeJson } from '../io/results.js';
import { overlayPng, writePng } from '../report/figures.js';
import { KensaError, unknownChoice } from '../util/errors.js';
import type { ProgressCallback } from '../util/progress.js';
import { Inspector } from './inspector.js';
import { loadModel, type KensaModel } from './model-file.js';
import { commonRoot, judge, outputNames, writeFigure, writeThumb, type DefectRegion } from './outputs.js';
import { writeResultsFile, type ResultImage } from '../report/results-file.js';
import { writeReport } from '../report/html.js';

export const THRESHOLD_CHOICES = ['fpr0', 'f1', 'quantile', 'custom'] as const;
export type ThresholdChoice = (typeof THRESHOLD_CHOICES)[number] | number;
/** How a model gets the thresholds that training does not store. */
const HOW_TO_GET: Record<string, string> = {
  f1: 'run kensa test --save-model on labelled images first, or choose fpr0, quantile or a number',
  custom: 'set one with kensa threshold --model MODEL --set VALUE',
};

export interface PredictOptions {
  model: string | KensaModel;
  /** Files, folders or glob patterns, or items. */
  inputs: string[] | ImageItem[];
  out: string;
  threshold?: ThresholdChoice;
  weights?: string;
  cacheDir?: string;
  batch?: number;
  /** Heat-map overlays (default true) and five-panel figures (default false; on with report). */
  overlays?: boolean;
  figures?: boolean;
  /** Also write the HTML report (report.html). */
  report?: boolean;
  /** Stop at the first unreadable image instead of listing it in errors.csv and going on. */
  failFast?: boolean;
  pixelLimit?: number;
  onProgress?: ProgressCallback;
}

export interface PredictError {
  file: string;
  error: string;
}

export interface Prediction {
  file: string;
  score: number;
  normalized_score: number;
  verdict: 'OK' | 'NG';
  width: number;
  height: number;
  regions: DefectRegion[];
}

/** The threshold a choice stands for in this model, with a clear error when the model lacks it. */
export function resolveThreshold(model: KensaModel, choice?: ThresholdChoice): number {
  choice ??= model.meta.thresholds.custom !== undefined ? 'custom' : 'fpr0';
  if (typeof choice === 'number') {
    if (!Number.isFinite(choice))
      throw new KensaError('E_ARGUMENT', `Expected a finite number for threshold but received ${choice}`);
    return choice;
  }
  const t = model.meta.thresholds;
  if (!THRESHOLD_CHOICES.includes(choice))
    throw unknownChoice('threshold', String(choice), [...THRESHOLD_CHOICES, 'a number']);
  const value = t[choice];
  if (value === undefined)
    throw new KensaError('E_ARGUMENT', `the model has no ${choice} threshold; ${HOW_TO_GET[choice]}`);
  return value;
}

export async function predict(
  options: PredictOptions,
): Promise<{ predictions: Prediction[]; errors: PredictError[]; threshold: number }> {
  const model = typeof options.model === 'string' ? await loadModel(options.model) : options.model;
  const threshold = resolveThreshold(model, options.threshold);
  const items: ImageItem[] =
    options.inputs.length && typeof options.inputs[0] === 'string'
      ? collectImages(options.inputs as string[])
      : (options.inputs as ImageItem[]);
  if (!items.length) throw new KensaError('E_NOT_FOUND', 'no images to inspect were given');
  const names = outputNames(
    items.map((i) => i.path),
    commonRoot(items.map((i) => i.path)),
  );
  const inspector = await Inspector.open(model, { weights: options.weights, cacheDir: options.cacheDir });
  const size = inspector.size;
  const predictions: Prediction[] = [];
  const errors: PredictError[] = [];
  const resultImages: ResultImage[] = [];
  const onError = options.failFast
    ? undefined
    : (item: ImageItem, error: Error) => errors.push({ file: item.path, error: error.message });
  try {
    for await (const r of inspector.score(items, {
      batch: options.batch,
      onProgress: options.onProgress,
      task: 'predict',
      onError,
      pixelLimit: options.pixelLimit,
    })) {
      const v = judge(r, threshold, size);
      predictions.push({
        file: r.item.path,
        score: r.score,
        normalized_score: v.normalized_score,
        verdict: v.verdict,
        width: r.image.width,
        height: r.image.height,
        regions: v.regions,
      });
      const name = names.get(r.item.path)!;
      const entry: ResultImage = { file: r.item.path, name, score: r.score, regions: v.regions.length };
      if (r.item.label !== undefined)
        Object.assign(entry, { label: r.item.label, category: r.item.category });
      if ((options.overlays ?? true) || options.figures || options.report) {
        entry.thumb = await writeThumb(options.out, name, r, model, size);
      }
      if (options.overlays ?? true) {
        entry.overlay = `overlays/${name}.png`;
        await writePng(
          join(options.out, entry.overlay),
          await overlayPng(r.item.path, r.map, size, model.meta.calibration.display),
        );
      }
      if (options.figures || options.report) {
        entry.figure = `figures/${name}.png`;
        await writeFigure(join(options.out, entry.figure), r, v, model, threshold, size, name);
      }
      resultImages.push(entry);
    }
  } finally {
    await inspector.dispose();
  }
  await writeCsv(
    join(options.out, 'predictions.csv'),
    [
      'file',
      'score',
      'normalized_score',
      'verdict',
      'regions',
      'largest_region_x',
      'largest_region_y',
      'largest_region_width',
      'largest_region_height',
    ],
    predictions.map((p) => {
      const top = p.regions[0];
      return [
        p.file,
        p.score,
        p.normalized_score,
        p.verdict,
        p.regions.length,
        top?.x,
        top?.y,
        top?.width,
        top?.height,
      ];
    }),
  );
  await writeJson(join(options.out, 'predictions.json'), {
    model: { backbone: model.meta.backbone.name, thresholds: model.meta.thresholds },
    threshold,
    predictions,
    errors,
  });
  await writeFileAtomic(
    join(options.out, 'ng_list.txt'),
    predictions
      .filter((p) => p.verdict === 'NG')
      .map((p) => `${p.file}\n`)
      .join(''),
  );
  await writeCsv(
    join(options.out, 'errors.csv'),
    ['file', 'error'],
    errors.map((e) => [e.file, e.error]),
  );
  await writeResultsFile(options.out, {
    kind: 'predict',
    model: {
      path: typeof options.model === 'string' ? options.model : undefined,
      backbone: model.meta.backbone.name,
      thresholds: { ...model.meta.thresholds },
    },
    threshold,
    images: resultImages,
  });
  if (options.report) await writeReport(options.out);
  return { predictions, errors, threshold };
}
