/**
 * THE RUN: what kensa test and kensa predict (and kensa classify test|predict) share, once, for every
 * method — take the results folder, load the model, resolve the threshold, collect the images, name the
 * outputs, score, decide, draw the pictures, write predictions.csv / regions.csv / predictions.json /
 * ng_list.txt / errors.csv, results.json and the report. A verb says only how it finds its images and, for
 * test, what it measures along the way (`onImage`) and writes at the end (`finish`).
 *
 * One schema for every method: predictions.csv (file, category, label, score, normalized_score, verdict,
 * regions, the largest region's box, all boxes), regions.csv (one row per region, its box in original
 * pixels, area and peak score), predictions.json (the same, with the threshold, errors and drift).
 */
import { join, resolve } from 'node:path';
import { reviewFolders, type ImageItem } from '../../data/dataset.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { writeCsv, writeJson } from '../../io/results.js';
import { getMethod } from '../../models/registry.js';
import { learningCurves } from '../../report/figures.js';
import { LEARNING_CURVES, writeReport } from '../../report/html.js';
import {
  resultsModel,
  writeResultsFile,
  type ResultImage,
  type ResultsFile,
} from '../../report/results-file.js';
import { KensaError } from '../../util/errors.js';
import type { ProgressCallback } from '../../util/progress.js';
import { keptScores } from '../contracts/calibration.js';
import {
  checkSizeRule,
  decide,
  resolveThreshold,
  type SizeRule,
  type Decision,
  type DefectRegion,
  type ThresholdChoice,
} from '../contracts/decisions.js';
import { DriftMonitor, driftMessage, ngShareMessage, type DriftStatus } from '../contracts/drift.js';
import { loadModel, type KensaModel } from '../contracts/model-file.js';
import { lockResultsFolder, startRunRecord } from '../outputs/paths.js';
import {
  calibrationResults,
  commonRoot,
  outputNames,
  writeFigure,
  writeOverlay,
  writeThumb,
} from '../outputs/pictures.js';
import { Inspector, type ScoredImage } from './inspector.js';

/** What every verb that scores images takes (test, predict; the library's options include these). */
export interface ScoringOptions {
  weights?: string;
  cacheDir?: string;
  /** Most network inputs per backbone batch. */
  batch?: number;
  pixelLimit?: number;
  onProgress?: ProgressCallback;
  /** Notes for the user (files left out, drift, ...). */
  onWarning?: (message: string) => void;
  /** Millimetres per original pixel (default: the model's, from train --mm-per-pixel). */
  mmPerPixel?: number;
  /** Regions whose longer side is below this many mm do not count towards NG (needs the pixel size). */
  minDefectMm?: number;
  /** How strongly the heat map covers the photograph in overlays (0 to 1, default 0.5). */
  overlayOpacity?: number;
  /** Told the memory estimate before any image is scored. */
  onPlan?: (message: string) => void;
}

export interface RunError {
  file: string;
  error: string;
}

/** One image's result, as the result files keep it (no map or pixels: they would grow with the run). */
export interface Prediction {
  file: string;
  /** The defect type (test), when known. */
  category?: string;
  /** 0 good, 1 defective, when known. */
  label?: 0 | 1;
  score: number;
  normalized_score: number;
  verdict: 'OK' | 'NG';
  width: number;
  height: number;
  regions: DefectRegion[];
}

export interface RunSpec extends ScoringOptions {
  kind: 'test' | 'predict';
  model: string | KensaModel;
  out: string;
  threshold?: ThresholdChoice;
  /** The images, found once the results folder is taken (`unreadable`: paths that cannot be opened). */
  images: (discovery: {
    exclude: string[];
    unreadable: (file: string, error: string) => void;
  }) => ImageItem[];
  /** The root output names are made relative to (default: the images' common folder). */
  root?: string;
  /** The data set folder the images came from (kensa test), for the report's review commands. */
  data?: string;
  /** Pictures: report thumbnails, heat-map overlays, five-panel figures. */
  pictures: { thumbs: boolean; overlays: boolean; figures: boolean };
  report?: boolean;
  /** Stop at the first unreadable image (default: list it in errors.csv and go on). */
  failFast?: boolean;
  loadMasks?: boolean;
  task: string;
  /** Called for every scored image with its decision (test: pixel metrics). */
  onImage?: (r: ScoredImage, d: Decision) => void;
  /** Called after the files of the run are written, before results.json (test: metrics, curves). */
  finish?: (run: RunResult) => Promise<Pick<ResultsFile, 'metrics'> & { thresholds?: object }>;
}

export interface RunResult {
  model: KensaModel;
  threshold: { name: string; value: number };
  predictions: Prediction[];
  errors: RunError[];
  /** The images that were scored and those that could not be (in the order given). */
  items: ImageItem[];
  drift: DriftStatus;
  /** Seconds: scoring (backbone and method) and pictures. */
  timings_s: { score: number; backbone: number; method: number; pictures: number };
}

/** All regions of an image in one CSV cell: "x,y,width,height" separated by ";". */
const boxesCell = (regions: DefectRegion[]) =>
  regions.map((r) => `${r.x},${r.y},${r.width},${r.height}`).join(';');

/**
 * The model of a run and how it decides: the threshold (checked against the method's score range) and
 * the size rule (the pixel size given, else the model's).
 */
export async function decisionsOf(
  source: string | KensaModel,
  o: { threshold?: ThresholdChoice; mmPerPixel?: number; minDefectMm?: number },
): Promise<{ model: KensaModel; threshold: { name: string; value: number }; size: SizeRule }> {
  const model = typeof source === 'string' ? await loadModel(source) : source;
  const threshold = resolveThreshold(
    model.meta.thresholds,
    o.threshold,
    getMethod(model.meta.method).scoreRange,
  );
  const size = checkSizeRule({
    mmPerPixel: o.mmPerPixel ?? model.meta.mm_per_pixel,
    minDefectMm: o.minDefectMm,
  });
  return { model, threshold, size };
}

/** A scored image's result as the result files keep it. */
export function predictionOf(r: ScoredImage, v: Decision): Prediction {
  return {
    file: r.item.path,
    ...(r.item.category !== undefined ? { category: r.item.category } : {}),
    ...(r.item.label !== undefined ? { label: r.item.label } : {}),
    score: r.score,
    normalized_score: v.normalized_score,
    verdict: v.verdict,
    width: r.image.width,
    height: r.image.height,
    regions: v.regions,
  };
}

/** A line of ng_list.txt: the path, or — when it holds a line break or starts with a quote — a JSON string. */
export function listLine(path: string): string {
  return /[\n\r]/.test(path) || path.startsWith('"') ? JSON.stringify(path) : path;
}

export const PREDICTIONS_HEADER = [
  'file',
  'category',
  'label',
  'score',
  'normalized_score',
  'verdict',
  'regions',
  'largest_region_x',
  'largest_region_y',
  'largest_region_width',
  'largest_region_height',
  'boxes',
];
export const REGIONS_HEADER = [
  'file',
  'region',
  'x',
  'y',
  'width',
  'height',
  'area',
  'peak_score',
  'width_mm',
  'height_mm',
  'area_mm2',
  'counts',
];

/** A prediction's row of predictions.csv (PREDICTIONS_HEADER). */
export function predictionRow(p: Prediction): (string | number | undefined)[] {
  const label = (l?: 0 | 1) => (l === undefined ? '' : l ? 'NG' : 'OK');
  const top = p.regions[0];
  return [
    p.file,
    p.category ?? '',
    label(p.label),
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
}

/** A prediction's rows of regions.csv (REGIONS_HEADER), one per region. */
export function regionRows(p: Prediction): (string | number | undefined)[][] {
  return p.regions.map((g, i) => [
    p.file,
    i + 1,
    g.x,
    g.y,
    g.width,
    g.height,
    g.area,
    g.peak_score,
    g.width_mm,
    g.height_mm,
    g.area_mm2,
    g.counts === undefined ? '' : g.counts ? 'yes' : 'no',
  ]);
}

/** The errors.csv header and a line of ng_list.txt per NG prediction. */
export const ERRORS_HEADER = ['file', 'error'];
export const ngLines = (predictions: readonly Prediction[]) =>
  predictions
    .filter((p) => p.verdict === 'NG')
    .map((p) => `${listLine(p.file)}\n`)
    .join('');

/** predictions.csv, regions.csv, ng_list.txt and errors.csv of a set of results (a run's, a watch's). */
export async function writeListFiles(
  out: string,
  predictions: readonly Prediction[],
  errors: readonly RunError[],
): Promise<void> {
  await writeCsv(join(out, 'predictions.csv'), PREDICTIONS_HEADER, predictions.map(predictionRow));
  await writeCsv(join(out, 'regions.csv'), REGIONS_HEADER, predictions.flatMap(regionRows));
  await writeFileAtomic(join(out, 'ng_list.txt'), ngLines(predictions));
  await writeCsv(
    join(out, 'errors.csv'),
    ERRORS_HEADER,
    errors.map((e) => [e.file, e.error]),
  );
}

/** predictions.csv, regions.csv, predictions.json, ng_list.txt and errors.csv of a run. */
async function writeRunFiles(out: string, r: RunResult): Promise<void> {
  await writeListFiles(out, r.predictions, r.errors);
  await writeJson(join(out, 'predictions.json'), {
    model: {
      method: r.model.meta.method,
      backbone: r.model.meta.backbone.name,
      thresholds: r.model.meta.thresholds,
    },
    threshold: r.threshold.value,
    threshold_name: r.threshold.name,
    predictions: r.predictions,
    errors: r.errors,
    drift: r.drift,
  });
}

/** Runs images through a model and writes the results of a test or predict run. */
export async function runImages(spec: RunSpec): Promise<RunResult> {
  const release = await lockResultsFolder(spec.out);
  const record = await startRunRecord(spec.out).catch((error) => {
    release();
    throw error;
  });
  try {
    const { model, threshold, size } = await decisionsOf(spec.model, spec);
    const errors: RunError[] = [];
    // a path that looks like an image but cannot be opened (a broken link) is an error of this run
    const unreadable = (file: string, error: string) => {
      if (spec.failFast) throw new KensaError('E_IO', error, { file });
      errors.push({ file, error });
    };
    const items = spec.images({ exclude: [spec.out], unreadable });
    if (!items.length && !errors.length)
      throw new KensaError('E_NOT_FOUND', 'no images to inspect were given');
    const names = outputNames(
      items.map((i) => i.path),
      spec.root ?? commonRoot(items.map((i) => i.path)),
    );
    const inspector = await Inspector.open(model, {
      weights: spec.weights,
      cacheDir: spec.cacheDir,
      batch: spec.batch,
      onPlan: spec.onPlan,
      items,
      pixelLimit: spec.pixelLimit,
    });
    const predictions: Prediction[] = [];
    const resultImages: ResultImage[] = [];
    const monitor = new DriftMonitor(keptScores(model.calibrationScores, model.meta.calibration));
    const split = { backbone: 0, method: 0 };
    let pictureSeconds = 0;
    const started = performance.now();
    try {
      for await (const r of inspector.score(items, {
        batch: spec.batch,
        onProgress: spec.onProgress,
        task: spec.task,
        onError: spec.failFast
          ? undefined
          : (item, error) => errors.push({ file: item.path, error: error.message }),
        onWarning: spec.onWarning,
        loadMasks: spec.loadMasks,
        pixelLimit: spec.pixelLimit,
        timing: split,
      })) {
        const v = decide(r, threshold.value, size);
        // drift is judged on good images where labels say which, else on those judged OK
        if (r.item.label === undefined ? v.verdict === 'OK' : r.item.label === 0) monitor.add(r.score);
        spec.onImage?.(r, v);
        predictions.push(predictionOf(r, v));
        const name = names.get(r.item.path)!;
        const entry: ResultImage = { file: r.item.path, name, score: r.score, regions: v.regions.length };
        if (r.item.label !== undefined)
          Object.assign(entry, { label: r.item.label, category: r.item.category });
        // pictures: a failure to write them (a full disk, a name the file system refuses) costs this image
        // its pictures, never the results of the run
        const p0 = performance.now();
        const { thumbs, overlays, figures } = spec.pictures;
        try {
          if (thumbs || overlays || figures) entry.thumb = await writeThumb(spec.out, name, r, model);
          if (overlays) entry.overlay = await writeOverlay(spec.out, name, r, v, model, spec.overlayOpacity);
          if (figures) {
            entry.figure = `figures/${name}.png`;
            await writeFigure(join(spec.out, entry.figure), r, v, model, name);
          }
        } catch (error) {
          if (spec.failFast) throw error;
          delete entry.figure;
          errors.push({
            file: r.item.path,
            error: `its pictures could not be written: ${(error as Error).message}`,
          });
        }
        pictureSeconds += (performance.now() - p0) / 1000;
        resultImages.push(entry);
      }
    } finally {
      await inspector.dispose();
    }
    const drift = monitor.status();
    if (drift.drifting)
      spec.onWarning?.(driftMessage(drift, spec.kind === 'test' ? 'good test images' : 'images judged OK'));
    const most = ngShareMessage(predictions.filter((p) => p.verdict === 'NG').length, predictions.length);
    if (most && spec.kind === 'predict') spec.onWarning?.(most);
    const result: RunResult = {
      model,
      threshold,
      predictions,
      errors,
      items,
      drift,
      timings_s: {
        score: (performance.now() - started) / 1000 - pictureSeconds,
        backbone: split.backbone,
        method: split.method,
        pictures: pictureSeconds,
      },
    };
    await writeRunFiles(spec.out, result);
    // a method that trains by epochs (the classifier) shows its learning curves beside the results
    const history = getMethod(model.meta.method).history?.(model.state);
    if (history?.length && (spec.pictures.figures || spec.report))
      await writeFileAtomic(join(spec.out, LEARNING_CURVES), await learningCurves(history));
    const extra = (await spec.finish?.(result)) ?? {};
    const { thumbs, overlays, figures } = spec.pictures;
    await writeResultsFile(spec.out, {
      kind: spec.kind,
      model: resultsModel(spec.model, model.meta, extra.thresholds),
      ...(spec.data ? { data: resolve(spec.data), folders: reviewFolders(spec.data) } : {}),
      threshold: threshold.value,
      calibration: await calibrationResults(spec.out, model, thumbs || overlays || figures),
      ...(extra.metrics ? { metrics: extra.metrics } : {}),
      images: resultImages,
    });
    if (spec.report) await writeReport(spec.out);
    await record.finish();
    return result;
  } finally {
    record.stop();
    release();
  }
}
