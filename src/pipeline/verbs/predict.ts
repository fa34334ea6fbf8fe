/**
 * kensa predict: inspects new images with a trained model and writes predictions.csv and
 * predictions.json (score, normalised score, OK/NG verdict, defect regions as boxes in original
 * pixels), regions.csv (one row per region), ng_list.txt, and a heat-map overlay per image. No labels
 * needed, no re-training. An image that cannot be read, or whose pictures cannot be written, is listed in
 * errors.csv; the others get their results.
 */
import { join } from 'node:path';
import { collectImages, type ImageItem } from '../../data/dataset.js';
import { PIXEL_LIMIT_RANGE } from '../../image/load.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { writeCsv, writeJson } from '../../io/results.js';
import { writeReport } from '../../report/html.js';
import { resultsModel, writeResultsFile, type ResultImage } from '../../report/results-file.js';
import { assertInteger, KensaError } from '../../util/errors.js';
import type { ProgressCallback } from '../../util/progress.js';
import { keptScores } from '../contracts/calibration.js';
import { decide, resolveThreshold, type DefectRegion, type ThresholdChoice } from '../contracts/decisions.js';
import { DriftMonitor, driftMessage, ngShareMessage, type DriftStatus } from '../contracts/drift.js';
import { Inspector } from '../engine/inspector.js';
import { loadModel, type KensaModel } from '../contracts/model-file.js';
import { lockResultsFolder } from '../outputs/paths.js';
import {
  calibrationResults,
  commonRoot,
  outputNames,
  writeFigure,
  writeOverlay,
  writeThumb,
} from '../outputs/pictures.js';

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
  /** Notes for the user (e.g. files left out of the inputs). */
  onWarning?: (message: string) => void;
  /** Told the memory estimate before any image is scored. */
  onPlan?: (message: string) => void;
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

/** Checks a pixel limit given by a user: 0 would switch the decompression-bomb guard off. */
export function checkPixelLimit(limit: number | undefined): void {
  if (limit !== undefined) assertInteger('pixel-limit', limit, PIXEL_LIMIT_RANGE[0], PIXEL_LIMIT_RANGE[1]);
}

/** A line of ng_list.txt: the path, or — when it holds a line break or starts with a quote — a JSON string. */
export function listLine(path: string): string {
  return /[\n\r]/.test(path) || path.startsWith('"') ? JSON.stringify(path) : path;
}

/** All regions of an image in one CSV cell: "x,y,width,height" separated by ";". */
const boxesCell = (regions: DefectRegion[]) =>
  regions.map((r) => `${r.x},${r.y},${r.width},${r.height}`).join(';');

export async function predict(
  options: PredictOptions,
): Promise<{ predictions: Prediction[]; errors: PredictError[]; threshold: number; drift: DriftStatus }> {
  if (options.batch !== undefined) assertInteger('batch', options.batch, 1, 4096);
  checkPixelLimit(options.pixelLimit);
  const release = await lockResultsFolder(options.out);
  try {
    const model = typeof options.model === 'string' ? await loadModel(options.model) : options.model;
    const { value: threshold } = resolveThreshold(model.meta.thresholds, options.threshold);
    const errors: PredictError[] = [];
    // a path that looks like an image but cannot be opened (a broken link) is an error of this run
    const onUnreadable = (file: string, error: string) => {
      if (options.failFast) throw new KensaError('E_IO', error, { file });
      errors.push({ file, error });
    };
    const items: ImageItem[] =
      options.inputs.length && typeof options.inputs[0] === 'string'
        ? collectImages(options.inputs as string[], {
            exclude: [options.out],
            onWarning: options.onWarning,
            onUnreadable,
          })
        : (options.inputs as ImageItem[]);
    if (!items.length && !errors.length)
      throw new KensaError('E_NOT_FOUND', 'no images to inspect were given');
    const names = outputNames(
      items.map((i) => i.path),
      commonRoot(items.map((i) => i.path)),
    );
    const inspector = await Inspector.open(model, {
      weights: options.weights,
      cacheDir: options.cacheDir,
      batch: options.batch,
      onPlan: options.onPlan,
      items,
      pixelLimit: options.pixelLimit,
    });
    const predictions: Prediction[] = [];
    const resultImages: ResultImage[] = [];
    const monitor = new DriftMonitor(keptScores(model.calibrationScores, model.meta.calibration));
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
        const v = decide(r, threshold);
        if (v.verdict === 'OK') monitor.add(r.score);
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
        // pictures: a failure to write them (a full disk, a name the file system refuses) costs this image
        // its pictures, never the results of the run
        try {
          if ((options.overlays ?? true) || options.figures || options.report)
            entry.thumb = await writeThumb(options.out, name, r, model);
          if (options.overlays ?? true) entry.overlay = await writeOverlay(options.out, name, r, v, model);
          if (options.figures || options.report) {
            entry.figure = `figures/${name}.png`;
            await writeFigure(join(options.out, entry.figure), r, v, model, name);
          }
        } catch (error) {
          if (options.failFast) throw error;
          delete entry.figure;
          errors.push({
            file: r.item.path,
            error: `its pictures could not be written: ${(error as Error).message}`,
          });
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
        'boxes',
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
          boxesCell(p.regions),
        ];
      }),
    );
    await writeCsv(
      join(options.out, 'regions.csv'),
      ['file', 'region', 'x', 'y', 'width', 'height', 'area', 'peak_score'],
      predictions.flatMap((p) =>
        p.regions.map((r, i) => [p.file, i + 1, r.x, r.y, r.width, r.height, r.area, r.peak_score]),
      ),
    );
    const drift = monitor.status();
    if (drift.drifting) options.onWarning?.(driftMessage(drift, 'images judged OK'));
    const most = ngShareMessage(predictions.filter((p) => p.verdict === 'NG').length, predictions.length);
    if (most) options.onWarning?.(most);
    await writeJson(join(options.out, 'predictions.json'), {
      model: {
        method: model.meta.method,
        backbone: model.meta.backbone.name,
        thresholds: model.meta.thresholds,
      },
      threshold,
      predictions,
      errors,
      drift,
    });
    await writeFileAtomic(
      join(options.out, 'ng_list.txt'),
      predictions
        .filter((p) => p.verdict === 'NG')
        .map((p) => `${listLine(p.file)}\n`)
        .join(''),
    );
    await writeCsv(
      join(options.out, 'errors.csv'),
      ['file', 'error'],
      errors.map((e) => [e.file, e.error]),
    );
    await writeResultsFile(options.out, {
      kind: 'predict',
      calibration: await calibrationResults(
        options.out,
        model,
        (options.overlays ?? true) || !!options.figures || !!options.report,
      ),
      model: resultsModel(options.model, model.meta),
      threshold,
      images: resultImages,
    });
    if (options.report) await writeReport(options.out);
    return { predictions, errors, threshold, drift };
  } finally {
    release();
  }
}
