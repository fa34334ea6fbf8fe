/**
 * kensa test: scores a labelled test set (test/good, test/<defect>) and writes metrics.json (image and
 * pixel AUROC, AUPRO, AP, F1-max, thresholds with their confusion counts, counts, timings), ROC and PR
 * curves, predictions.csv and the five-panel figure of every image. Images stream through: pixel metrics
 * are accumulated image by image, so memory does not grow with the test set.
 */
import { join } from 'node:path';
import { openDataset, type ImageItem } from '../../data/dataset.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { writeCsv, writeJson } from '../../io/results.js';
import {
  auroc,
  averagePrecision,
  bestF1,
  confusion,
  prCurve,
  rocCurve,
  type Confusion,
  type Metric,
} from '../../metrics/classification.js';
import { PixelMetricsStream } from '../../metrics/pixel-stream.js';
import { curvePng } from '../../report/figures.js';
import { writeReport } from '../../report/html.js';
import { resultsModel, writeResultsFile, type ResultImage } from '../../report/results-file.js';
import { assertInteger, KensaError } from '../../util/errors.js';
import type { ProgressCallback } from '../../util/progress.js';
import { keptScores } from '../contracts/calibration.js';
import { decide } from '../contracts/decisions.js';
import { DriftMonitor, driftMessage, type DriftStatus } from '../contracts/drift.js';
import { Inspector } from '../engine/inspector.js';
import { loadModel, saveModel, updateThresholds, type KensaModel } from '../contracts/model-file.js';
import { lockResultsFolder } from '../outputs/paths.js';
import { calibrationResults, outputNames, writeFigure, writeThumb } from '../outputs/pictures.js';
import { checkPixelLimit } from './predict.js';

export interface TestOptions {
  model: string | KensaModel;
  /** A data folder in the MVTec AD layout (its test/ part is used), or labelled items. */
  data: string | ImageItem[];
  out: string;
  /**
   * Store the best-F1 threshold: `true` in the model file itself (only its header is rewritten), a path
   * for a copy of the model with it.
   */
  saveModel?: string | boolean;
  weights?: string;
  cacheDir?: string;
  batch?: number;
  pixelLimit?: number;
  figures?: boolean;
  /** Also write the HTML report (report.html). */
  report?: boolean;
  onProgress?: ProgressCallback;
  /** Told the memory estimate before any image is scored. */
  onPlan?: (message: string) => void;
}

export interface TestImageResult {
  file: string;
  category: string;
  label: 0 | 1;
  score: number;
  verdict_fpr0: 'OK' | 'NG';
  regions: number;
}

export interface TestMetrics {
  image_auroc: number | null;
  pixel_auroc: number | null;
  aupro: number | null;
  image_ap: number | null;
  image_f1_max: number | null;
  /** Why a metric is null, by name. */
  undefined_reasons: Record<string, string>;
  thresholds: { fpr0: number; quantile: number; f1: number | null };
  confusion: { fpr0: Confusion; quantile: Confusion; f1?: Confusion };
  counts: {
    images: number;
    good: number;
    defective: number;
    with_mask: number;
    by_category: Record<string, number>;
  };
  /**
   * Whether the good test images still look like the calibration images (pipeline/drift.ts); null without
   * good images.
   */
  drift: DriftStatus | null;
  /** Images that could not be read and were left out of every metric. */
  skipped: { file: string; error: string }[];
  /** Odd but usable inputs, e.g. masks resized to their image. */
  warnings: string[];
  timings_s: Record<string, number>;
}

export async function test(
  options: TestOptions,
): Promise<{ metrics: TestMetrics; images: TestImageResult[]; model: KensaModel }> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  if (options.batch !== undefined) assertInteger('batch', options.batch, 1, 4096);
  checkPixelLimit(options.pixelLimit);
  const release = await lockResultsFolder(options.out);
  try {
    const model = typeof options.model === 'string' ? await loadModel(options.model) : options.model;
    if (options.saveModel === true && typeof options.model !== 'string')
      throw new KensaError(
        'E_ARGUMENT',
        'saveModel: true needs the model as a file path (or give a path for a copy)',
      );
    const warnings: string[] = [];
    const items =
      typeof options.data === 'string'
        ? openDataset(options.data, { exclude: [options.out], onWarning: (w) => warnings.push(w) }).test
        : options.data;
    const root = typeof options.data === 'string' ? join(options.data, 'test') : undefined;
    if (!items.length) {
      throw new KensaError(
        'E_NOT_FOUND',
        'no test images found (expected test/good/* and test/<defect type>/*)',
        {
          file: typeof options.data === 'string' ? options.data : undefined,
        },
      );
    }
    if (options.saveModel) {
      const missing = !items.some((i) => i.label === 0)
        ? 'good'
        : !items.some((i) => i.label === 1)
          ? 'defective'
          : '';
      if (missing)
        throw new KensaError(
          'E_ARGUMENT',
          `--save-model stores the threshold with the best F1 on the test set, which needs good and defective images; this test set has no ${missing} image. ` +
            'Add them (test/good and test/<defect type>), or leave --save-model out',
          { file: typeof options.data === 'string' ? options.data : undefined },
        );
    }
    const unlabelled = items.filter((i) => i.label === undefined);
    if (unlabelled.length) {
      throw new KensaError(
        'E_ARGUMENT',
        `kensa test needs labelled images (test/good, test/<defect>); ${unlabelled[0].path} has no label. Use kensa predict for unlabelled images`,
      );
    }
    let s = performance.now();
    const inspector = await Inspector.open(model, {
      weights: options.weights,
      cacheDir: options.cacheDir,
      batch: options.batch,
      onPlan: options.onPlan,
      items,
      pixelLimit: options.pixelLimit,
    });
    timings.load_backbone = (performance.now() - s) / 1000;
    const threshold = model.meta.thresholds.fpr0;
    const names = outputNames(
      items.map((i) => i.path),
      root,
    );
    const scores: number[] = [];
    const labels: number[] = [];
    const images: TestImageResult[] = [];
    const pixels = new PixelMetricsStream(threshold);
    let pixelImages = 0;
    const withMasks = items.some((i) => i.mask);
    s = performance.now();
    let tFigures = 0;
    let tPixels = 0;
    const split = { backbone: 0, method: 0 };
    const resultImages: ResultImage[] = [];
    const skipped: { file: string; error: string }[] = [];
    const onError = (item: ImageItem, error: Error) =>
      skipped.push({ file: item.path, error: error.message });
    try {
      for await (const r of inspector.score(items, {
        batch: options.batch,
        onProgress: options.onProgress,
        task: 'test: score',
        loadMasks: true,
        timing: split,
        onError,
        onWarning: (w) => warnings.push(w),
        pixelLimit: options.pixelLimit,
      })) {
        const label = r.item.label!;
        scores.push(r.score);
        labels.push(label);
        const v = decide(r, threshold);
        images.push({
          file: r.item.path,
          category: r.item.category ?? '',
          label,
          score: r.score,
          verdict_fpr0: v.verdict,
          regions: v.regions.length,
        });
        const g = r.image.geometry;
        if (withMasks) {
          // a defective image without a mask cannot be scored per pixel; good images are all-good pixels
          const mask = r.mask ?? (label === 0 ? new Uint8Array(g.inputWidth * g.inputHeight) : undefined);
          if (mask) {
            const p = performance.now();
            pixels.add(r.map, mask, g.inputWidth, g.inputHeight);
            pixelImages++;
            tPixels += performance.now() - p;
          }
        }
        const f = performance.now();
        const name = names.get(r.item.path)!;
        const entry: ResultImage = {
          file: r.item.path,
          name,
          category: r.item.category,
          label,
          score: r.score,
          regions: v.regions.length,
        };
        // pictures only when asked for (figures are on by default; the report needs them and the thumbnails)
        if ((options.figures ?? true) || options.report) {
          try {
            entry.thumb = await writeThumb(options.out, name, r, model);
            entry.figure = `figures/${name}.png`;
            await writeFigure(join(options.out, entry.figure), r, v, model, name);
          } catch (error) {
            warnings.push(`${r.item.path}: its pictures could not be written (${(error as Error).message})`);
            delete entry.figure;
          }
        }
        resultImages.push(entry);
        tFigures += performance.now() - f;
      }
    } finally {
      await inspector.dispose();
    }
    timings.score = (performance.now() - s) / 1000 - tFigures / 1000 - tPixels / 1000;
    timings.figures = tFigures / 1000;
    timings.score_backbone = split.backbone;
    timings.score_method = split.method;

    s = performance.now();
    const reasons: Record<string, string> = {};
    const take = (name: string, m: Metric) => {
      if (m.value === null && m.reason) reasons[name] = m.reason;
      return m.value;
    };
    const monitor = new DriftMonitor(keptScores(model.calibrationScores, model.meta.calibration));
    scores.forEach((v, i) => labels[i] === 0 && monitor.add(v));
    const drift = labels.includes(0) ? monitor.status() : null;
    if (drift?.drifting) warnings.push(driftMessage(drift, 'good test images'));
    const image_auroc = take('image_auroc', auroc(scores, labels));
    const image_ap = take('image_ap', averagePrecision(scores, labels));
    const f1 = bestF1(scores, labels);
    const image_f1_max = take('image_f1_max', f1.f1);
    let pixel_auroc: number | null = null;
    let aupro_value: number | null = null;
    if (pixelImages) {
      const pixel = pixels.result();
      pixel_auroc = take('pixel_auroc', pixel.pixel_auroc);
      aupro_value = take('aupro', pixel.aupro);
    } else {
      reasons.pixel_auroc = reasons.aupro = 'no ground-truth masks';
    }
    timings.metrics = (performance.now() - s) / 1000 + tPixels / 1000;

    const thresholds = { fpr0: threshold, quantile: model.meta.thresholds.quantile, f1: f1.threshold };
    const conf: TestMetrics['confusion'] = {
      fpr0: confusion(scores, labels, thresholds.fpr0),
      quantile: confusion(scores, labels, thresholds.quantile),
    };
    if (thresholds.f1 !== null) conf.f1 = confusion(scores, labels, thresholds.f1);
    const byCategory: Record<string, number> = {};
    for (const it of items) byCategory[it.category ?? ''] = (byCategory[it.category ?? ''] ?? 0) + 1;

    s = performance.now();
    const roc = rocCurve(scores, labels);
    const pr = prCurve(scores, labels);
    if (image_auroc !== null) {
      await writeFileAtomic(
        join(options.out, 'roc.png'),
        await curvePng(
          'ROC curve (image level)',
          'False positive rate',
          'True positive rate',
          [{ label: `AUROC ${image_auroc.toFixed(4)}`, x: roc.fpr, y: roc.tpr }],
          true,
        ),
      );
      await writeFileAtomic(
        join(options.out, 'pr.png'),
        await curvePng('Precision-recall curve (image level)', 'Recall', 'Precision', [
          { label: `AP ${image_ap!.toFixed(4)}`, x: [0, ...pr.recall], y: [1, ...pr.precision] },
        ]),
      );
    }
    await writeCsv(
      join(options.out, 'predictions.csv'),
      ['file', 'category', 'label', 'score', 'normalized_score', 'verdict', 'regions'],
      images.map((r) => [
        r.file,
        r.category,
        r.label ? 'NG' : 'OK',
        r.score,
        Number.isFinite(threshold) ? r.score / threshold : 0,
        r.verdict_fpr0,
        r.regions,
      ]),
    );
    if (options.saveModel && thresholds.f1 !== null && typeof options.model === 'string') {
      await updateThresholds(
        options.model,
        { f1: thresholds.f1 },
        options.saveModel === true ? options.model : options.saveModel,
      );
    } else if (typeof options.saveModel === 'string' && thresholds.f1 !== null) {
      await saveModel(options.saveModel, {
        ...model,
        meta: { ...model.meta, thresholds: { ...model.meta.thresholds, f1: thresholds.f1 } },
      });
    }
    timings.write = (performance.now() - s) / 1000;
    timings.total = (performance.now() - t0) / 1000;
    const metrics: TestMetrics = {
      image_auroc,
      pixel_auroc,
      aupro: aupro_value,
      image_ap,
      image_f1_max,
      undefined_reasons: reasons,
      thresholds,
      confusion: conf,
      counts: {
        images: items.length,
        good: labels.filter((l) => l === 0).length,
        defective: labels.filter((l) => l === 1).length,
        with_mask: items.filter((i) => i.mask).length,
        by_category: byCategory,
      },
      drift,
      skipped,
      warnings,
      timings_s: timings,
    };
    await writeJson(join(options.out, 'metrics.json'), metrics);
    await writeResultsFile(options.out, {
      kind: 'test',
      calibration: await calibrationResults(
        options.out,
        model,
        (options.figures ?? true) || !!options.report,
      ),
      model: resultsModel(options.model, model.meta, thresholds),
      threshold,
      metrics: { ...metrics },
      images: resultImages,
    });
    if (options.report) await writeReport(options.out);
    return { metrics, images, model };
  } finally {
    release();
  }
}
