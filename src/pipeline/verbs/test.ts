/**
 * kensa test: scores a labelled test set (test/good, test/<defect>) and writes metrics.json (image and
 * pixel AUROC, AUPRO, AP, F1-max, thresholds with their confusion counts, counts, timings), ROC and PR
 * curves, predictions.csv and the five-panel figure of every image. Images stream through: pixel metrics
 * are accumulated image by image, so memory does not grow with the test set.
 */
import { join } from 'node:path';
import { openTestImages, type ImageItem } from '../../data/dataset.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { writeJson } from '../../io/results.js';
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
import { curvePng, figureText } from '../../report/figures.js';
import { getMethod } from '../../models/registry.js';
import { checkOptions } from '../../options.js';
import { KensaError } from '../../util/errors.js';
import type { ProgressCallback } from '../../util/progress.js';
import type { ThresholdChoice } from '../contracts/decisions.js';
import type { DriftStatus } from '../contracts/drift.js';
import { saveModel, updateThresholds, type KensaModel } from '../contracts/model-file.js';
import { runImages, type RunResult } from '../engine/run.js';

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
  /** The threshold of the verdicts and pictures (default fpr0); metrics give every stored one too. */
  threshold?: ThresholdChoice;
  /** Millimetres per original pixel for the regions' sizes (default: the model's). */
  mmPerPixel?: number;
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
  /** The method's own metrics (Method.testMetrics: the classifier's calibration error and log loss). */
  [own: string]: unknown;
  image_auroc: number | null;
  pixel_auroc: number | null;
  aupro: number | null;
  image_ap: number | null;
  image_f1_max: number | null;
  /** Why a metric is null, by name. */
  undefined_reasons: Record<string, string>;
  /** The threshold of the verdicts (predictions.csv, the pictures). */
  threshold: { name: string; value: number };
  thresholds: { fpr0: number; quantile?: number; f1: number | null };
  /** Counts at fpr0, quantile and the test set's best-F1 threshold, and at the verdicts' threshold. */
  confusion: { fpr0: Confusion; quantile?: Confusion; f1?: Confusion; [name: string]: Confusion | undefined };
  counts: {
    images: number;
    good: number;
    defective: number;
    with_mask: number;
    by_category: Record<string, number>;
  };
  /**
   * Each defect type's images (by their folder under test/), how many each threshold finds and which
   * the verdicts' threshold misses; the good images' false alarms under `good`.
   */
  by_type: Record<string, TypeResult>;
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

export interface TypeResult {
  images: number;
  /** Defective types: images found (score above) at each threshold; good: false alarms at each. */
  above: Record<string, number>;
  /** Share of the type's images found (defective) or falsely alarmed (good) at each threshold. */
  share: Record<string, number>;
  /** At the verdicts' threshold: the defective images missed, or the good images falsely alarmed. */
  wrong: string[];
}

/** Per defect type (and good): what each threshold finds, and what the verdicts' threshold gets wrong. */
export function byType(
  predictions: readonly { file: string; category?: string; label?: 0 | 1; score: number }[],
  thresholds: Record<string, number | null | undefined>,
  verdict: number,
): Record<string, TypeResult> {
  const out: Record<string, TypeResult> = {};
  const groups = new Map<string, (typeof predictions)[number][]>();
  for (const p of predictions) {
    const key = p.label === 0 ? 'good' : (p.category ?? 'defective');
    const group = groups.get(key);
    if (group) group.push(p);
    else groups.set(key, [p]);
  }
  // defect types by name, the good images last
  const order = (k: string) => (k === 'good' ? '\uffff' : k);
  for (const [type, items] of [...groups].sort((a, b) => order(a[0]).localeCompare(order(b[0])))) {
    const good = type === 'good';
    const above: Record<string, number> = {};
    const share: Record<string, number> = {};
    for (const [name, t] of Object.entries(thresholds)) {
      if (typeof t !== 'number') continue;
      above[name] = items.filter((p) => p.score > t).length;
      share[name] = above[name] / items.length;
    }
    const wrong = items.filter((p) => p.score > verdict === good).map((p) => p.file);
    out[type] = { images: items.length, above, share, wrong };
  }
  return out;
}

/** The labelled images of a test run, checked: both classes for --save-model, a label on every image. */
function testImages(options: TestOptions, exclude: string[], warn: (w: string) => void): ImageItem[] {
  const where = typeof options.data === 'string' ? options.data : undefined;
  const items =
    typeof options.data === 'string'
      ? openTestImages(options.data, { exclude, onWarning: warn })
      : options.data;
  if (!items.length)
    throw new KensaError(
      'E_NOT_FOUND',
      'no test images found (expected test/good/* and test/<defect type>/*)',
      {
        file: where,
      },
    );
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
        { file: where },
      );
  }
  const unlabelled = items.filter((i) => i.label === undefined);
  if (unlabelled.length)
    throw new KensaError(
      'E_ARGUMENT',
      `kensa test needs labelled images (test/good, test/<defect>); ${unlabelled[0].path} has no label. Use kensa predict for unlabelled images`,
    );
  return items;
}

export async function test(
  options: TestOptions,
): Promise<{ metrics: TestMetrics; images: TestImageResult[]; model: KensaModel }> {
  const t0 = performance.now();
  checkOptions(options, ['batch', 'pixelLimit', 'mmPerPixel']);
  if (options.saveModel === true && typeof options.model !== 'string')
    throw new KensaError(
      'E_ARGUMENT',
      'saveModel: true needs the model as a file path (or give a path for a copy)',
    );
  const warnings: string[] = [];
  const warn = (w: string) => warnings.push(w);
  let pixels: PixelMetricsStream | undefined;
  let withMasks = false;
  let pixelImages = 0;
  let pixelSeconds = 0;
  let metrics: TestMetrics | undefined;
  const pictures = (options.figures ?? true) || !!options.report;
  const run = await runImages({
    kind: 'test',
    model: options.model,
    out: options.out,
    threshold: options.threshold ?? 'fpr0',
    images: ({ exclude }) => {
      const found = testImages(options, exclude, warn);
      withMasks = found.some((i) => i.mask);
      return found;
    },
    root: typeof options.data === 'string' ? join(options.data, 'test') : undefined,
    data: typeof options.data === 'string' ? options.data : undefined,
    pictures: { thumbs: pictures, overlays: false, figures: pictures },
    report: options.report,
    loadMasks: true,
    task: 'test: score',
    weights: options.weights,
    cacheDir: options.cacheDir,
    batch: options.batch,
    pixelLimit: options.pixelLimit,
    mmPerPixel: options.mmPerPixel,
    onProgress: options.onProgress,
    onPlan: options.onPlan,
    onWarning: warn,
    onImage: (r, d) => {
      // a defective image without a mask cannot be scored per pixel; good images are all-good pixels
      const g = r.image.geometry;
      const mask = r.mask ?? (r.item.label === 0 ? new Uint8Array(g.inputWidth * g.inputHeight) : undefined);
      if (!withMasks || !mask) return;
      const p = performance.now();
      pixels ??= new PixelMetricsStream(d.threshold);
      pixels.add(r.map, mask, g.inputWidth, g.inputHeight);
      pixelImages++;
      pixelSeconds += (performance.now() - p) / 1000;
    },
    finish: async (result) => {
      metrics = await measure(options, result, warnings, { pixels, pixelImages, pixelSeconds });
      metrics.timings_s.total = (performance.now() - t0) / 1000;
      await writeJson(join(options.out, 'metrics.json'), metrics);
      return { metrics: { ...metrics }, thresholds: metrics.thresholds };
    },
  });
  const images: TestImageResult[] = run.predictions.map((p) => ({
    file: p.file,
    category: p.category ?? '',
    label: p.label!,
    score: p.score,
    verdict_fpr0: p.verdict,
    regions: p.regions.length,
  }));
  return { metrics: metrics!, images, model: run.model };
}

/** The metrics of a finished test run, its curves, and the f1 threshold stored when asked. */
async function measure(
  options: TestOptions,
  run: RunResult,
  warnings: string[],
  px: { pixels?: PixelMetricsStream; pixelImages: number; pixelSeconds: number },
): Promise<TestMetrics> {
  const { model } = run;
  const s = performance.now();
  const scores = run.predictions.map((p) => p.score);
  const labels = run.predictions.map((p) => p.label!);
  const reasons: Record<string, string> = {};
  const take = (name: string, m: Metric) => {
    if (m.value === null && m.reason) reasons[name] = m.reason;
    return m.value;
  };
  const image_auroc = take('image_auroc', auroc(scores, labels));
  const image_ap = take('image_ap', averagePrecision(scores, labels));
  const f1 = bestF1(scores, labels);
  const image_f1_max = take('image_f1_max', f1.f1);
  let pixel_auroc: number | null = null;
  let aupro_value: number | null = null;
  if (px.pixels && px.pixelImages) {
    const pixel = px.pixels.result();
    pixel_auroc = take('pixel_auroc', pixel.pixel_auroc);
    aupro_value = take('aupro', pixel.aupro);
  } else {
    reasons.pixel_auroc = reasons.aupro = 'no ground-truth masks';
  }
  const metricSeconds = (performance.now() - s) / 1000 + px.pixelSeconds;
  const thresholds = {
    fpr0: model.meta.thresholds.fpr0,
    quantile: model.meta.thresholds.quantile,
    f1: f1.threshold,
  };
  const conf: TestMetrics['confusion'] = { fpr0: confusion(scores, labels, thresholds.fpr0) };
  if (thresholds.quantile !== undefined) conf.quantile = confusion(scores, labels, thresholds.quantile);
  if (thresholds.f1 !== null) conf.f1 = confusion(scores, labels, thresholds.f1);
  if (!(run.threshold.name in conf))
    conf[run.threshold.name] = confusion(scores, labels, run.threshold.value);
  const byCategory: Record<string, number> = {};
  for (const it of run.items) byCategory[it.category ?? ''] = (byCategory[it.category ?? ''] ?? 0) + 1;

  const w = performance.now();
  const roc = rocCurve(scores, labels);
  const pr = prCurve(scores, labels);
  if (image_auroc !== null) {
    await writeFileAtomic(
      join(options.out, 'roc.png'),
      await curvePng(
        figureText('ROC curve (image level)', 'ROC 曲線（画像単位）'),
        figureText('False positive rate', '偽陽性率'),
        figureText('True positive rate', '真陽性率'),
        [{ label: `AUROC ${image_auroc.toFixed(4)}`, x: roc.fpr, y: roc.tpr }],
        true,
      ),
    );
    await writeFileAtomic(
      join(options.out, 'pr.png'),
      await curvePng(
        figureText('Precision-recall curve (image level)', '適合率・再現率曲線（画像単位）'),
        figureText('Recall', '再現率'),
        figureText('Precision', '適合率'),
        [{ label: `AP ${image_ap!.toFixed(4)}`, x: [0, ...pr.recall], y: [1, ...pr.precision] }],
      ),
    );
  }
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
  const own = getMethod(model.meta.method).testMetrics?.(model.state, scores, labels) ?? {};
  return {
    ...own,
    image_auroc,
    pixel_auroc,
    aupro: aupro_value,
    image_ap,
    image_f1_max,
    undefined_reasons: reasons,
    threshold: run.threshold,
    thresholds,
    confusion: conf,
    by_type: byType(
      run.predictions,
      {
        ...thresholds,
        ...(run.threshold.name in thresholds ? {} : { [run.threshold.name]: run.threshold.value }),
      },
      run.threshold.value,
    ),
    counts: {
      images: run.items.length,
      good: labels.filter((l) => l === 0).length,
      defective: labels.filter((l) => l === 1).length,
      with_mask: run.items.filter((i) => i.mask).length,
      by_category: byCategory,
    },
    drift: labels.includes(0) ? run.drift : null,
    skipped: run.errors,
    warnings,
    timings_s: {
      score: run.timings_s.score - px.pixelSeconds,
      figures: run.timings_s.pictures,
      score_backbone: run.timings_s.backbone,
      score_method: run.timings_s.method,
      metrics: metricSeconds,
      write: (performance.now() - w) / 1000,
    },
  };
}
