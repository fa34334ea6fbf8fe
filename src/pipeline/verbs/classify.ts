/**
 * kensa classify: a supervised OK/NG classifier for engineers who have some NG images, beside the anomaly
 * models that need none. The backbone stays frozen (onnxruntime runs networks, it does not train them);
 * its stride-8 patch embedding (PatchCore's: pooled layer2 and upsampled layer3) averaged over the image
 * feeds a logistic-regression head trained here (models/classifier/head.ts), with augmented copies of the
 * training images, a seeded validation split, early stopping and temperature scaling.
 *
 *   train    good images (train/good, or --good) and NG images (every other folder under train/, or
 *            --ng) → the head, thresholds (fpr0: no good validation image NG; f1) and learning curves
 *   test     test/good and test/<defect>: metrics.json, ROC/PR and learning curves, predictions, figures
 *   predict  images → probabilities, verdicts, class-activation regions, overlays
 *
 * The class activation map of a linear head on averaged features is exact: CAM(position) = w·x̃(position)
 * + b, whose mean over the positions is the image's logit. It goes through the shared map step (upsampling,
 * smoothing) and is shown like an anomaly map. It shows where the features pushed the decision towards NG;
 * it is not a segmentation (stride 8, smoothed), and it can point at anything the NG training images had in
 * common, defect or not.
 */
import { extname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { Backbone } from '../../backbone/backbone.js';
import { collectImages, openDataset, openLabelled, type ImageItem } from '../../data/dataset.js';
import type { LoadedImage } from '../../image/load.js';
import { DEFAULT_SIZE, validatePreprocess, type Preprocess } from '../../image/preprocess.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { writeCsv, writeJson } from '../../io/results.js';
import {
  auroc,
  averagePrecision,
  bestF1,
  confusion,
  prCurve,
  rocCurve,
} from '../../metrics/classification.js';
import { augment, AUGMENTATIONS, type Augmentation } from '../../models/classifier/augment.js';
import {
  balancedLoss,
  calibrationError,
  DEFAULT_TRAIN,
  fitTemperature,
  MIN_CALIBRATION_IMAGES,
  logitOf,
  probability,
  trainHead,
  type EpochRecord,
  type Example,
  type TrainSettings,
} from '../../models/classifier/head.js';
import {
  loadClassifier,
  saveClassifier,
  CLASSIFIER_FORMAT,
  CLASSIFIER_FORMAT_VERSION,
  type ClassifierModel,
} from '../../models/classifier/model-file.js';
import { EmbedGraph } from '../../models/patchcore/graphs.js';
import { getMethod } from '../../models/registry.js';
import { PATCHCORE_STRIDE } from '../../models/patchcore/model.js';
import { curvePng, fivePanelFigure } from '../../report/figures.js';
import { LEARNING_CURVES, writeReport } from '../../report/html.js';
import { writeResultsFile, type ResultImage } from '../../report/results-file.js';
import { checkOption, checkOptions, OPTIONS } from '../../options.js';
import { KensaError } from '../../util/errors.js';
import type { ProgressCallback } from '../../util/progress.js';
import { mulberry32, shuffledIndices } from '../../util/random.js';
import { quantile } from '../../util/stats.js';
import { decide, type DefectRegion } from '../contracts/decisions.js';
import { DEFAULT_FIT_BATCH, inputBatches, MapSteps, checkWeights } from '../engine/inspector.js';
import { lockResultsFolder, checkWritable } from '../outputs/paths.js';
import { commonRoot, outputNames, writeOverlayOf, writeThumbOf } from '../outputs/pictures.js';
import { KENSA_VERSION } from '../../version.js';
import { listLine } from '../engine/run.js';

export const DEFAULT_COPIES = OPTIONS.copies.default;
export const DEFAULT_VAL_FRACTION = OPTIONS.classifierValFraction.default;
/** Augmented copies embedded together (their PNG bytes are held until then). */
const AUGMENTED_CHUNK = 64;

/** One image's embedding: its patch rows [h·w, C] and grid. */
export interface Embedded {
  index: number;
  item: ImageItem;
  image: LoadedImage;
  rows: Float32Array;
  h: number;
  w: number;
}

/** The frozen feature extractor: backbone + PatchCore's embedding (stride 8, 152 values for Lite0). */
class Features {
  private constructor(
    readonly backbone: Backbone,
    private readonly embed: EmbedGraph,
  ) {}

  static async open(name: string, options: { weights?: string; cacheDir?: string }): Promise<Features> {
    const backbone = await Backbone.load(name, options);
    return new Features(backbone, await EmbedGraph.create(backbone.channels));
  }

  get dim(): number {
    return this.backbone.channels[1] + this.backbone.channels[2];
  }

  async *embedded(
    items: readonly ImageItem[],
    preprocess: Preprocess,
    options: { batch?: number; onError?: (item: ImageItem, error: Error) => void; pixelLimit?: number },
  ): AsyncGenerator<Embedded> {
    const C = this.dim;
    for await (const batch of inputBatches(this.backbone, items, preprocess, options)) {
      const rows = await this.embed.run(batch.features);
      const [, , h, w] = batch.features[1].dims;
      for (let b = 0; b < batch.inputs.length; b++) {
        const { image } = batch.inputs[b];
        yield {
          index: image.index,
          item: image.item,
          image: image.image,
          rows: rows.slice(b * h * w * C, (b + 1) * h * w * C),
          h,
          w,
        };
      }
    }
  }

  async dispose(): Promise<void> {
    await this.embed.release();
    await this.backbone.dispose();
  }
}

/** The average of the patch rows: the image's feature vector. */
export function pooled(e: Embedded, C: number): Float32Array {
  const v = new Float32Array(C);
  const n = e.h * e.w;
  for (let p = 0; p < n; p++) for (let c = 0; c < C; c++) v[c] += e.rows[p * C + c] / n;
  return v;
}

/** CAM on the grid: w·x̃ + b per patch (raw logit units; its mean is the image's logit). */
export function camGrid(model: ClassifierModel, e: Embedded): Float32Array {
  const { mean, std, weight, bias } = model.head;
  const C = weight.length;
  const n = e.h * e.w;
  const grid = new Float32Array(n);
  for (let p = 0; p < n; p++) {
    let z = bias;
    for (let c = 0; c < C; c++) z += (weight[c] * (e.rows[p * C + c] - mean[c])) / std[c];
    grid[p] = z;
  }
  return grid;
}

/** The raw logit at which the probability equals `p` (for the map's threshold). */
const logitAt = (model: ClassifierModel, p: number) =>
  model.head.temperature * Math.log(Math.max(p, 1e-12) / Math.max(1 - p, 1e-12));

// ---------------------------------------------------------------------------------------------- train

export interface ClassifyTrainOptions {
  /** A data folder: train/good (OK) and every other folder under train/ (NG, by defect type). */
  data?: string;
  /** Or: folders (files, patterns) of good and of NG images. */
  good?: string[];
  ng?: string[];
  out: string;
  backbone?: string;
  weights?: string;
  cacheDir?: string;
  size?: number;
  preprocess?: Preprocess;
  /** Augmented copies per training image (0: none). */
  copies?: number;
  /** Augmentations to use (default all). */
  augment?: Augmentation[];
  valFraction?: number;
  epochs?: number;
  learningRate?: number;
  weightDecay?: number;
  patience?: number;
  seed?: number;
  batch?: number;
  pixelLimit?: number;
  onProgress?: ProgressCallback;
  onWarning?: (message: string) => void;
  /** Told each epoch's losses and accuracies. */
  onEpoch?: (r: EpochRecord) => void;
}

export interface ClassifyTrainResult {
  model: ClassifierModel;
  /** The learning curves' PNG, written beside the model. */
  curves: string;
  seconds: number;
}

/** Good and NG images from the options, labelled; each class must hold at least one image. */
export function classifierImages(
  o: Pick<ClassifyTrainOptions, 'data' | 'good' | 'ng' | 'out' | 'onWarning'>,
) {
  const discovery = { exclude: [o.out], onWarning: o.onWarning };
  let good: ImageItem[];
  let ng: ImageItem[];
  if (o.data) {
    if (o.good || o.ng)
      throw new KensaError('E_ARGUMENT', 'give either --data or --good with --ng, not both');
    const train = resolve(o.data, 'train');
    let found;
    try {
      found = openLabelled(train, discovery);
    } catch (error) {
      if (!(error instanceof KensaError) || error.code !== 'E_NOT_FOUND') throw error;
      throw new KensaError(
        'E_NOT_FOUND',
        "the data folder has no train/ folder. A classifier's data folder holds train/good and one folder per defect type under train/ (train/crack, ...)",
        { file: o.data },
      );
    }
    good = found.good;
    ng = found.defective;
    if (!good.length)
      throw new KensaError(
        'E_NOT_FOUND',
        'no good images: put them in train/good (or train/OK, train/良品)',
        {
          file: train,
        },
      );
    if (!ng.length)
      throw new KensaError(
        'E_NOT_FOUND',
        'no NG images: put them in a folder per defect type under train/ (train/crack/*.png, ...) or in train/NG; with good images only, use kensa train (anomaly detection)',
        { file: train },
      );
  } else {
    if (!o.good?.length || !o.ng?.length)
      throw new KensaError('E_ARGUMENT', 'give --data DIR, or both --good and --ng');
    good = collectImages(o.good, discovery).map((i) => ({ ...i, category: 'good', label: 0 as const }));
    ng = collectImages(o.ng, discovery).map((i) => ({ ...i, category: 'ng', label: 1 as const }));
  }
  return { good, ng };
}

/** A stratified, seeded split: `fraction` of each class to validation (none from a class of one image). */
function split(items: ImageItem[], fraction: number, seed: number) {
  const train: ImageItem[] = [];
  const validation: ImageItem[] = [];
  for (const label of [0, 1]) {
    const cls = items.filter((i) => i.label === label);
    const order = shuffledIndices(cls.length, mulberry32(seed + label));
    const n = cls.length < 2 ? 0 : Math.max(1, Math.min(cls.length - 1, Math.round(cls.length * fraction)));
    order.forEach((k, j) => (j < n ? validation : train).push(cls[k]));
  }
  return { train, validation };
}

export async function trainClassifier(options: ClassifyTrainOptions): Promise<ClassifyTrainResult> {
  const t0 = performance.now();
  const settings: TrainSettings = {
    epochs: options.epochs ?? DEFAULT_TRAIN.epochs,
    learningRate: options.learningRate ?? DEFAULT_TRAIN.learningRate,
    weightDecay: options.weightDecay ?? DEFAULT_TRAIN.weightDecay,
    patience: options.patience ?? DEFAULT_TRAIN.patience,
    seed: options.seed ?? 0,
  };
  checkOptions(settings, ['epochs', 'patience', 'seed']);
  checkOptions(options, ['copies', 'batch', 'pixelLimit']);
  const valFraction = options.valFraction ?? DEFAULT_VAL_FRACTION;
  checkOption('classifierValFraction', valFraction, 'valFraction');
  const preprocess = validatePreprocess(
    options.preprocess ?? { mode: 'fit', size: options.size ?? DEFAULT_SIZE },
  );
  if (preprocess.tile)
    throw new KensaError(
      'E_ARGUMENT',
      'the classifier takes whole images: train it without --tile (use --scale or --size)',
    );
  await checkWritable(options.out, 'file');
  const { good, ng } = classifierImages(options);
  const warn = options.onWarning ?? (() => {});
  if (ng.length === 1)
    warn(
      '1 NG image: it is used for training, so no NG image is left for validation — early stopping watches the good images only and no f1 threshold is stored. Add NG images for a classifier you can trust',
    );
  const { train, validation } = split([...good, ...ng], valFraction, settings.seed);
  const enabled = new Set(options.augment ?? AUGMENTATIONS);
  const copies = enabled.size ? (options.copies ?? DEFAULT_COPIES) : 0;
  const features = await Features.open(options.backbone ?? 'efficientnet_lite0', options);
  const skipped: string[] = [];
  const onError = (item: ImageItem, error: Error) => {
    skipped.push(item.path);
    warn(`left out: ${error.message}`);
  };
  try {
    const C = features.dim;
    const all = [...train, ...validation];
    const examples = new Map<number, Example>();
    const random = mulberry32(settings.seed + 7);
    // augmented copies of training images (PNG bytes at the processed size), embedded a chunk at a time
    // so that only one chunk of them is ever held
    let augmented: { item: ImageItem; owner: number }[] = [];
    const embedAugmented = async () => {
      // the copies are already at the processed size: scale 1 keeps them as they are
      for await (const e of features.embedded(
        augmented.map((a) => a.item),
        { mode: 'scale', scale: 1 },
        { batch: options.batch ?? DEFAULT_FIT_BATCH },
      ))
        examples.get(augmented[e.index].owner)?.views.push(pooled(e, C));
      augmented = [];
    };
    let done = 0;
    for await (const e of features.embedded(all, preprocess, {
      batch: options.batch ?? DEFAULT_FIT_BATCH,
      onError,
    })) {
      examples.set(e.index, { views: [pooled(e, C)], label: e.item.label as 0 | 1 });
      if (e.index < train.length) {
        const g = e.image.geometry;
        for (let k = 0; k < copies; k++) {
          const a = augment(
            { rgb: e.image.rgb, width: g.inputWidth, height: g.inputHeight },
            enabled,
            random,
          );
          const bytes = await sharp(a.rgb, { raw: { width: a.width, height: a.height, channels: 3 } })
            .png({ compressionLevel: 0 })
            .toBuffer();
          augmented.push({
            item: { path: `${e.item.path} (augmented ${k + 1})`, bytes, label: e.item.label },
            owner: e.index,
          });
        }
        if (augmented.length >= AUGMENTED_CHUNK) await embedAugmented();
      }
      options.onProgress?.({
        task: 'classify train: features (with augmented copies)',
        done: ++done,
        total: all.length,
        unit: 'images',
      });
    }
    await embedAugmented();
    const trainEx = train.map((_, i) => examples.get(i)).filter((e): e is Example => !!e);
    const valEx = validation.map((_, i) => examples.get(train.length + i)).filter((e): e is Example => !!e);
    if (!trainEx.some((e) => e.label === 0) || !trainEx.some((e) => e.label === 1))
      throw new KensaError(
        'E_ARGUMENT',
        'after leaving out unreadable images, a class has no training image left',
      );
    const { params, history, bestEpoch } = trainHead(trainEx, valEx, settings, options.onEpoch);
    const categories: Record<string, number> = {};
    for (const i of [...good, ...ng]) categories[i.category!] = (categories[i.category!] ?? 0) + 1;
    // temperature scaling and thresholds on the validation images (the training ones, where there are none)
    const calib = valEx.length ? valEx : trainEx;
    const logits = calib.map((e) => logitOf(params, e.views[0]));
    const labels = calib.map((e) => e.label);
    const eceBefore = calibrationError(
      logits.map((z) => probability(params, z)),
      labels,
    );
    params.temperature = fitTemperature(logits, labels);
    if (labels.filter((l) => l === 1).length < MIN_CALIBRATION_IMAGES)
      warn(
        `fewer than ${MIN_CALIBRATION_IMAGES} NG validation images: the probabilities are not calibrated (temperature 1); the thresholds still come from the validation images`,
      );
    const probs = logits.map((z) => probability(params, z));
    const eceAfter = calibrationError(probs, labels);
    const goodProbs = probs.filter((_, i) => labels[i] === 0);
    const f1 = labels.includes(1) && labels.includes(0) ? bestF1(probs, labels).threshold : null;
    const thresholds = { fpr0: Math.max(...goodProbs), ...(f1 !== null ? { f1 } : {}) };
    if (!valEx.some((e) => e.label === 0))
      warn(
        'no good image was left for validation: the thresholds come from the training images and will be too low',
      );
    // the heat map's range: the CAM values of the validation images' patches, up to their 99th percentile
    const camTop: number[] = [];
    const model: ClassifierModel = {
      head: params,
      meta: {
        format: CLASSIFIER_FORMAT,
        format_version: CLASSIFIER_FORMAT_VERSION,
        method: 'classifier',
        kensa_version: KENSA_VERSION,
        backbone: {
          name: features.backbone.name,
          weights_sha256: features.backbone.weights?.sha256 ?? '',
          weights_official: features.backbone.weights?.official ?? false,
          channels: features.backbone.channels,
        },
        preprocess,
        map: getMethod('patchcore').map,
        features: { dim: C, stride: PATCHCORE_STRIDE, pooling: 'mean' },
        head: { bias: params.bias, temperature: params.temperature },
        training: {
          good: trainEx.filter((e) => e.label === 0).length,
          ng: trainEx.filter((e) => e.label === 1).length,
          categories,
          validation: {
            good: valEx.filter((e) => e.label === 0).length,
            ng: valEx.filter((e) => e.label === 1).length,
          },
          augment: copies ? [...enabled] : [],
          copies,
          epochs: history.length,
          best_epoch: bestEpoch,
          learning_rate: settings.learningRate,
          weight_decay: settings.weightDecay,
          patience: settings.patience,
          seed: settings.seed,
          skipped: skipped.length,
        },
        history,
        calibration: { temperature: params.temperature, ece_before: eceBefore, ece_after: eceAfter },
        thresholds,
        display: [0, 1],
      },
    };
    for await (const e of features.embedded(validation.length ? validation : train.slice(0, 64), preprocess, {
      batch: options.batch ?? DEFAULT_FIT_BATCH,
      onError: () => {},
    })) {
      const grid = camGrid(model, e);
      camTop.push(quantile(Array.from(grid), 0.99));
    }
    const top = Math.max(quantile(camTop, 0.99), logitAt(model, thresholds.fpr0) + 1, 1);
    model.meta.display = [Math.min(0, logitAt(model, thresholds.fpr0) - 2), top];
    await saveClassifier(options.out, model);
    const curves = `${options.out.slice(0, options.out.length - extname(options.out).length)}.learning.png`;
    await writeFileAtomic(curves, await learningCurves(history));
    return { model, curves, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await features.dispose();
  }
}

/** Loss and accuracy per epoch, train and validation, as one PNG (two plots side by side). */
export async function learningCurves(history: EpochRecord[]): Promise<Uint8Array> {
  const epochs = history.map((r) => r.epoch);
  const last = epochs.at(-1) ?? 1;
  const series = (key: keyof EpochRecord) =>
    history.filter((r) => r[key] !== null).map((r) => r[key] as number);
  const hasVal = history.some((r) => r.val_loss !== null);
  const lossTop = Math.max(...series('train_loss'), ...(hasVal ? series('val_loss') : []), 1e-3) * 1.05;
  const loss = await curvePng(
    'Loss per epoch (class-balanced cross-entropy)',
    'Epoch',
    'Loss',
    [
      { label: 'train', x: epochs, y: series('train_loss') },
      ...(hasVal ? [{ label: 'validation', x: epochs, y: series('val_loss') }] : []),
    ],
    false,
    { x: [0, last], y: [0, lossTop] },
  );
  const accuracy = await curvePng(
    'Accuracy per epoch (at p = 0.5)',
    'Epoch',
    'Accuracy',
    [
      { label: 'train', x: epochs, y: series('train_accuracy') },
      ...(hasVal ? [{ label: 'validation', x: epochs, y: series('val_accuracy') }] : []),
    ],
    false,
    { x: [0, last], y: [0, 1] },
  );
  const a = await sharp(loss).metadata();
  return sharp({ create: { width: a.width! * 2, height: a.height!, channels: 3, background: '#fff' } })
    .composite([
      { input: Buffer.from(loss), left: 0, top: 0 },
      { input: Buffer.from(accuracy), left: a.width!, top: 0 },
    ])
    .png()
    .toBuffer();
}

// ------------------------------------------------------------------------------------- test, predict

export interface ClassifiedImage {
  item: ImageItem;
  image: LoadedImage;
  probability: number;
  logit: number;
  verdict: 'OK' | 'NG';
  /** The class activation map at the processed size (raw logit units). */
  map: Float32Array;
  regions: DefectRegion[];
  /** The map level the regions are cut at (logit units). */
  regionLevel: number;
  predicted: Uint8Array;
}

/** What the result files keep of a classified image: not its map or pixels, which would grow with the run. */
export interface Classification {
  item: ImageItem;
  probability: number;
  logit: number;
  verdict: 'OK' | 'NG';
  width: number;
  height: number;
  regions: DefectRegion[];
}

const kept = (r: ClassifiedImage): Classification => ({
  item: r.item,
  probability: r.probability,
  logit: r.logit,
  verdict: r.verdict,
  width: r.image.width,
  height: r.image.height,
  regions: r.regions,
});

export interface ClassifyRunOptions {
  model: string | ClassifierModel;
  out: string;
  threshold?: 'fpr0' | 'f1' | number;
  weights?: string;
  cacheDir?: string;
  batch?: number;
  figures?: boolean;
  overlays?: boolean;
  report?: boolean;
  pixelLimit?: number;
  onProgress?: ProgressCallback;
  onWarning?: (message: string) => void;
}

function chosenThreshold(model: ClassifierModel, choice: ClassifyRunOptions['threshold']) {
  if (typeof choice === 'number') {
    if (!(choice > 0 && choice < 1))
      throw new KensaError(
        'E_ARGUMENT',
        `Expected a probability in (0, 1) for --threshold but received ${choice}`,
      );
    return { name: 'value', value: choice };
  }
  const name = choice ?? 'fpr0';
  const value = model.meta.thresholds[name];
  if (value === undefined)
    throw new KensaError(
      'E_ARGUMENT',
      `the classifier has no ${name} threshold (its validation images held no NG image); use fpr0 or a probability`,
    );
  return { name, value };
}

/** Scores images: probability, verdict, the class activation map and its regions (NG images only). */
async function* classifyImages(
  model: ClassifierModel,
  features: Features,
  items: ImageItem[],
  threshold: number,
  options: {
    batch?: number;
    pixelLimit?: number;
    onError?: (item: ImageItem, error: Error) => void;
    onProgress?: ProgressCallback;
    task: string;
  },
): AsyncGenerator<ClassifiedImage> {
  const steps = new MapSteps(model.meta.map);
  const C = model.meta.features.dim;
  const level = logitAt(model, threshold);
  let done = 0;
  for await (const e of features.embedded(items, model.meta.preprocess, options)) {
    const g = e.image.geometry;
    const grid = camGrid(model, e);
    const map = new Float32Array(g.inputWidth * g.inputHeight);
    const mapMax = steps.get(e.h, e.w, g.inputHeight, g.inputWidth).apply(grid, map);
    const logit = logitOf(model.head, pooled(e, C));
    const p = probability(model.head, logit);
    const verdict = p > threshold ? 'NG' : 'OK';
    // regions: where the local evidence for NG is more than halfway from the decision's logit (which an
    // NG image's mean exceeds) to the map's peak
    const regionLevel = level + 0.5 * Math.max(0, mapMax - level);
    const d = decide({ map, mapMax, score: mapMax, image: e.image }, regionLevel);
    yield {
      item: e.item,
      image: e.image,
      probability: p,
      logit,
      verdict,
      map,
      regionLevel,
      regions: verdict === 'NG' ? d.regions : [],
      predicted: verdict === 'NG' ? d.predicted : new Uint8Array(map.length),
    };
    options.onProgress?.({ task: options.task, done: ++done, total: items.length, unit: 'images' });
  }
}

async function withFeatures<T>(
  model: ClassifierModel,
  o: ClassifyRunOptions,
  run: (f: Features) => Promise<T>,
) {
  const features = await Features.open(model.meta.backbone.name, o);
  try {
    if (features.backbone.weights) checkWeights(model, features.backbone.weights);
    return await run(features);
  } finally {
    await features.dispose();
  }
}

/** The pictures of one image: overlay, thumbnail, five-panel figure (as asked). */
async function pictures(
  out: string,
  name: string,
  r: ClassifiedImage,
  model: ClassifierModel,
  threshold: number,
  o: { overlays: boolean; figures: boolean },
  entry: ResultImage,
): Promise<void> {
  const g = r.image.geometry;
  const range = model.meta.display;
  if (o.overlays || o.figures) entry.thumb = await writeThumbOf(out, name, r, range);
  if (o.overlays) entry.overlay = await writeOverlayOf(out, name, r, range, r.regions);
  if (o.figures) {
    entry.figure = `figures/${name}.png`;
    await writeFileAtomic(
      join(out, entry.figure),
      await fivePanelFigure({
        title: name,
        rgb: r.image.rgb,
        width: g.inputWidth,
        height: g.inputHeight,
        map: r.map,
        predicted: r.predicted,
        threshold: r.regionLevel,
        range,
        verdict: r.verdict,
        score: r.probability,
        regions: r.regions,
        geometry: g,
        scoreText: `p(NG) ${r.probability.toFixed(3)}, threshold ${threshold.toPrecision(3)}`,
        mapLabel: 'Class activation (logit)',
      }),
    );
  }
}

const resultsModelOf = (source: string | ClassifierModel, model: ClassifierModel) => ({
  path: typeof source === 'string' ? source : undefined,
  method: 'classifier',
  backbone: model.meta.backbone.name,
  thresholds: { ...model.meta.thresholds },
});

const boxes = (regions: DefectRegion[]) =>
  regions.map((r) => `${r.x},${r.y},${r.width},${r.height}`).join(';');

export interface ClassifyTestOptions extends ClassifyRunOptions {
  data: string;
}

export async function testClassifier(options: ClassifyTestOptions): Promise<Record<string, unknown>> {
  checkOptions(options, ['batch', 'pixelLimit']);
  const release = await lockResultsFolder(options.out);
  try {
    const model = typeof options.model === 'string' ? await loadClassifier(options.model) : options.model;
    const { value: threshold, name: thresholdName } = chosenThreshold(model, options.threshold);
    const items = openDataset(options.data, { exclude: [options.out], onWarning: options.onWarning }).test;
    if (!items.length)
      throw new KensaError('E_NOT_FOUND', 'no test images (test/good and test/<defect type>)', {
        file: options.data,
      });
    const names = outputNames(
      items.map((i) => i.path),
      commonRoot(items.map((i) => i.path)),
    );
    const skipped: { file: string; error: string }[] = [];
    const t0 = performance.now();
    const rows: { r: Classification; entry: ResultImage }[] = [];
    const figures = options.figures ?? true;
    await withFeatures(model, options, async (features) => {
      for await (const r of classifyImages(model, features, items, threshold, {
        batch: options.batch,
        pixelLimit: options.pixelLimit,
        onError: (item, error) => skipped.push({ file: item.path, error: error.message }),
        onProgress: options.onProgress,
        task: 'classify test',
      })) {
        const name = names.get(r.item.path)!;
        const entry: ResultImage = {
          file: r.item.path,
          name,
          category: r.item.category,
          label: r.item.label,
          score: r.probability,
          regions: r.regions.length,
        };
        await pictures(
          options.out,
          name,
          r,
          model,
          threshold,
          { overlays: false, figures: figures || !!options.report },
          entry,
        );
        rows.push({ r: kept(r), entry });
      }
    });
    const seconds = (performance.now() - t0) / 1000;
    const probs = rows.map(({ r }) => r.probability);
    const labels = rows.map(({ r }) => r.item.label ?? 0);
    const thresholds: Record<string, number> = { ...model.meta.thresholds };
    if (typeof options.threshold === 'number') thresholds.value = options.threshold;
    const conf = Object.fromEntries(
      Object.entries(thresholds).map(([k, t]) => [k, confusion(probs, labels, t)]),
    );
    const metrics = {
      method: 'classifier',
      image_auroc: auroc(probs, labels).value,
      image_ap: averagePrecision(probs, labels).value,
      image_f1_max: bestF1(probs, labels).f1.value,
      calibration_error: calibrationError(probs, labels),
      log_loss: rows.length
        ? balancedLoss(
            rows.map(({ r }) => r.logit / model.head.temperature),
            labels,
          ).loss
        : null,
      threshold: { name: thresholdName, value: threshold },
      thresholds,
      confusion: conf,
      counts: {
        images: rows.length,
        good: labels.filter((l) => l === 0).length,
        defective: labels.filter((l) => l === 1).length,
        skipped: skipped.length,
      },
      training: model.meta.training,
      validation_calibration: model.meta.calibration,
      timings_s: { total: seconds, per_image: rows.length ? seconds / rows.length : null },
      skipped,
    };
    await writeJson(join(options.out, 'metrics.json'), metrics);
    const roc = rocCurve(probs, labels);
    const pr = prCurve(probs, labels);
    if (labels.includes(0) && labels.includes(1)) {
      await writeFileAtomic(
        join(options.out, 'roc.png'),
        await curvePng(
          'ROC curve (classifier)',
          'False-positive rate',
          'True-positive rate',
          [{ label: 'classifier', x: roc.fpr, y: roc.tpr }],
          true,
        ),
      );
      await writeFileAtomic(
        join(options.out, 'pr.png'),
        await curvePng('Precision-recall curve (classifier)', 'Recall', 'Precision', [
          { label: 'classifier', x: pr.recall, y: pr.precision },
        ]),
      );
    }
    await writeFileAtomic(join(options.out, LEARNING_CURVES), await learningCurves(model.meta.history));
    await writePredictionFiles(
      options.out,
      rows.map(({ r }) => r),
      threshold,
    );
    await writeResultsFile(options.out, {
      kind: 'test',
      model: resultsModelOf(options.model, model),
      threshold,
      metrics,
      images: rows.map(({ entry }) => entry),
    });
    if (options.report) await writeReport(options.out);
    return metrics;
  } finally {
    release();
  }
}

/** predictions.csv/json, regions.csv and ng_list.txt of classified images. */
async function writePredictionFiles(out: string, rows: Classification[], threshold: number): Promise<void> {
  await writeCsv(
    join(out, 'predictions.csv'),
    ['file', 'category', 'label', 'probability', 'verdict', 'regions', 'boxes'],
    rows.map((r) => [
      r.item.path,
      r.item.category ?? '',
      r.item.label ?? '',
      r.probability,
      r.verdict,
      r.regions.length,
      boxes(r.regions),
    ]),
  );
  await writeJson(join(out, 'predictions.json'), {
    threshold,
    predictions: rows.map((r) => ({
      file: r.item.path,
      probability: r.probability,
      verdict: r.verdict,
      width: r.width,
      height: r.height,
      regions: r.regions,
    })),
  });
  await writeCsv(
    join(out, 'regions.csv'),
    ['file', 'x', 'y', 'width', 'height', 'area', 'peak_logit'],
    rows.flatMap((r) =>
      r.regions.map((g) => [r.item.path, g.x, g.y, g.width, g.height, g.area, g.peak_score]),
    ),
  );
  const ng = rows.filter((r) => r.verdict === 'NG').map((r) => listLine(r.item.path));
  await writeFileAtomic(join(out, 'ng_list.txt'), ng.length ? ng.join('\n') + '\n' : '');
}

export interface ClassifyPredictOptions extends ClassifyRunOptions {
  inputs: string[];
}

export async function predictClassifier(
  options: ClassifyPredictOptions,
): Promise<{ predictions: Classification[]; errors: { file: string; error: string }[]; threshold: number }> {
  checkOptions(options, ['batch', 'pixelLimit']);
  const release = await lockResultsFolder(options.out);
  try {
    const model = typeof options.model === 'string' ? await loadClassifier(options.model) : options.model;
    const { value: threshold } = chosenThreshold(model, options.threshold);
    const errors: { file: string; error: string }[] = [];
    const items = collectImages(options.inputs, {
      exclude: [options.out],
      onWarning: options.onWarning,
      onUnreadable: (file, error) => errors.push({ file, error }),
    });
    if (!items.length && !errors.length)
      throw new KensaError('E_NOT_FOUND', 'no images to inspect were given');
    const names = outputNames(
      items.map((i) => i.path),
      commonRoot(items.map((i) => i.path)),
    );
    const predictions: Classification[] = [];
    const entries: ResultImage[] = [];
    await withFeatures(model, options, async (features) => {
      for await (const r of classifyImages(model, features, items, threshold, {
        batch: options.batch,
        pixelLimit: options.pixelLimit,
        onError: (item, error) => errors.push({ file: item.path, error: error.message }),
        onProgress: options.onProgress,
        task: 'classify predict',
      })) {
        const name = names.get(r.item.path)!;
        const entry: ResultImage = {
          file: r.item.path,
          name,
          score: r.probability,
          regions: r.regions.length,
        };
        try {
          await pictures(
            options.out,
            name,
            r,
            model,
            threshold,
            { overlays: options.overlays ?? true, figures: !!(options.figures || options.report) },
            entry,
          );
        } catch (error) {
          errors.push({ file: r.item.path, error: `pictures not written: ${(error as Error).message}` });
        }
        predictions.push(kept(r));
        entries.push(entry);
      }
    });
    await writePredictionFiles(options.out, predictions, threshold);
    await writeCsv(
      join(options.out, 'errors.csv'),
      ['file', 'error'],
      errors.map((e) => [e.file, e.error]),
    );
    await writeResultsFile(options.out, {
      kind: 'predict',
      model: resultsModelOf(options.model, model),
      threshold,
      images: entries,
    });
    if (options.report) {
      await writeFileAtomic(join(options.out, LEARNING_CURVES), await learningCurves(model.meta.history));
      await writeReport(options.out);
    }
    return { predictions, errors, threshold };
  } finally {
    release();
  }
}
