/**
 * kensa classify train: a supervised classifier for engineers who have some NG images, beside the anomaly
 * methods that need none — what is specific to training it: labelled good and NG images (train/good and
 * train/<defect>, or --good and --ng), and one of two heads on the frozen backbone:
 *
 *   patch (default)  the patch head on a PatchCore member (models/classifier/patch-method.ts), fitted by
 *                    classify-patch.ts: every image's calibration probability out-of-fold (--folds), so
 *                    fpr0 rests on every good image
 *   image            logistic regression on the averaged patch embedding (models/classifier/method.ts):
 *                    a seeded stratified validation split, augmented copies of the training images, early
 *                    stopping and the thresholds on the validation images
 *
 * then the thresholds from the calibration images' probabilities (fpr0: no good calibration image NG;
 * quantile; f1) and the learning curves. The model is a kensa model like the others'
 * (pipeline/contracts/model-file.ts): kensa test, predict, serve, threshold and export take it, and kensa
 * classify test|predict are those verbs for a classifier (pipeline/engine/run.ts).
 */
import { extname, resolve } from 'node:path';
import sharp from 'sharp';
import { Backbone } from '../../backbone/backbone.js';
import { collectImages, openLabelled, type ImageItem } from '../../data/dataset.js';
import { DEFAULT_SIZE, validatePreprocess, type Preprocess } from '../../image/preprocess.js';
import { writeFileAtomic } from '../../io/atomic.js';
import { bestF1 } from '../../metrics/classification.js';
import { augment, AUGMENTATIONS, type Augmentation } from '../../models/classifier/augment.js';
import { DEFAULT_TRAIN, type EpochRecord, type TrainSettings } from '../../models/classifier/head.js';
import { ClassifierFitter, type ClassifierState } from '../../models/classifier/method.js';
import { ANOMALY_MEMBERS, type AnomalyMember } from '../../models/classifier/patch-method.js';
import type { MethodState } from '../../models/method.js';
import { getMethod } from '../../models/registry.js';
import { checkOption, checkOptions, OPTIONS } from '../../options.js';
import { learningCurves } from '../../report/figures.js';
import { KensaError } from '../../util/errors.js';
import { sha256Bytes, sha256File } from '../../util/hash.js';
import type { ProgressCallback } from '../../util/progress.js';
import { mulberry32, shuffledIndices } from '../../util/random.js';
import { KENSA_VERSION } from '../../version.js';
import { calibrationWarnings, summarize } from '../contracts/calibration.js';
import {
  loadModel,
  MODEL_FORMAT,
  MODEL_FORMAT_VERSION,
  saveModel,
  type KensaModel,
} from '../contracts/model-file.js';
import { DEFAULT_FIT_BATCH, inputBatches } from '../engine/inspector.js';
import { checkNewModel, checkWritable } from '../outputs/paths.js';
import { fitPatchClassifier } from './classify-patch.js';
import { predict, type PredictOptions } from './predict.js';
import { test, type TestOptions } from './test.js';
import { tr } from '../../i18n.js';

export const DEFAULT_COPIES = OPTIONS.copies.default;
export const DEFAULT_VAL_FRACTION = OPTIONS.classifierValFraction.default;
export const DEFAULT_CLASSIFIER_FOLDS = OPTIONS.classifierFolds.default;
/**
 * The heads kensa classify train fits: 'patch' (the default; models/classifier/patch-method.ts) adds to an
 * anomaly member (the ensemble, kensa train's default, or PatchCore: `anomalyMethod`), 'image' (models/classifier/method.ts) learns from the averaged embedding alone.
 */
export const HEADS = ['patch', 'image'] as const;
export type Head = (typeof HEADS)[number];
export const DEFAULT_HEAD: Head = 'patch';
/** The patch head's anomaly member unless one is named: kensa train's default for whole images. */
export const DEFAULT_ANOMALY_MEMBER: AnomalyMember = 'ensemble';
/** Augmented copies embedded together (their PNG bytes are held until then). */
const AUGMENTED_CHUNK = 64;

export interface ClassifyTrainOptions {
  /** A data folder: train/good (OK) and every other folder under train/ (NG, by defect type). */
  data?: string;
  /** Or: folders (files, patterns) of good and of NG images. */
  good?: string[];
  ng?: string[];
  out: string;
  /** Which head (default 'patch'). */
  head?: Head;
  /** Folds of the patch head's cross-fitting (default 5). */
  folds?: number;
  /** The anomaly method the patch head stands on (default 'ensemble'). */
  anomalyMethod?: AnomalyMember;
  /** Replace a model file already at `out` (default: refuse, naming what is there). */
  force?: boolean;
  /** Millimetres per original-image pixel, stored in the model (regions get sizes in mm). */
  mmPerPixel?: number;
  backbone?: string;
  weights?: string;
  cacheDir?: string;
  size?: number;
  preprocess?: Preprocess;
  /** Augmented copies per training image (0: none; the image head only). */
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
  /** Told the memory estimate before any work (the patch head). */
  onPlan?: (message: string) => void;
  /** Told each epoch's losses and accuracies. */
  onEpoch?: (r: EpochRecord) => void;
}

export interface ClassifyTrainResult {
  model: KensaModel;
  /** The learning curves' PNG, written beside the model. */
  curves: string;
  seconds: number;
  /** The patch head's steps, in seconds (classify-patch.ts). */
  timings?: Record<string, number>;
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
  const head = options.head ?? DEFAULT_HEAD;
  if (!(HEADS as readonly string[]).includes(head))
    throw new KensaError('E_ARGUMENT', `--head is ${head}: expected one of ${HEADS.join(', ')}`);
  const settings: TrainSettings = {
    epochs: options.epochs ?? DEFAULT_TRAIN.epochs,
    learningRate: options.learningRate ?? DEFAULT_TRAIN.learningRate,
    weightDecay: options.weightDecay ?? DEFAULT_TRAIN.weightDecay,
    patience: options.patience ?? DEFAULT_TRAIN.patience,
    seed: options.seed ?? 0,
  };
  checkOptions(settings, ['epochs', 'patience', 'seed']);
  checkOptions(options, ['copies', 'batch', 'pixelLimit', 'mmPerPixel']);
  const valFraction = options.valFraction ?? DEFAULT_VAL_FRACTION;
  checkOption('classifierValFraction', valFraction, 'valFraction');
  const folds = options.folds ?? DEFAULT_CLASSIFIER_FOLDS;
  checkOption('classifierFolds', folds, 'folds');
  if (head === 'patch') {
    const given = (
      [
        ['--copies', options.copies],
        ['--augment', options.augment],
        ['--val-fraction', options.valFraction],
      ] as const
    ).filter(([, v]) => v !== undefined);
    if (given.length)
      throw new KensaError(
        'E_ARGUMENT',
        `${given.map(([f]) => f).join(', ')} ${given.length > 1 ? 'apply' : 'applies'} to --head image only: the patch head (the default) uses no augmented copies and calibrates on every image by --folds instead of a validation split`,
      );
  } else if (options.folds !== undefined)
    throw new KensaError(
      'E_ARGUMENT',
      '--folds applies to the patch head (the default); --head image holds out --val-fraction of each class instead',
    );
  else if (options.anomalyMethod !== undefined)
    throw new KensaError(
      'E_ARGUMENT',
      '--anomaly-method applies to the patch head (the default); --head image learns from the averaged embedding alone',
    );
  if (
    options.anomalyMethod !== undefined &&
    !(ANOMALY_MEMBERS as readonly string[]).includes(options.anomalyMethod)
  )
    throw new KensaError(
      'E_ARGUMENT',
      `--anomaly-method is ${options.anomalyMethod}: expected one of ${ANOMALY_MEMBERS.join(', ')}`,
    );
  const preprocess = validatePreprocess(
    options.preprocess ?? { mode: 'fit', size: options.size ?? DEFAULT_SIZE },
  );
  if (preprocess.tile)
    throw new KensaError(
      'E_ARGUMENT',
      'the classifier takes whole images: train it without --tile (use --scale or --size)',
    );
  await checkNewModel(options.out, options.force, 'kensa classify train');
  await checkWritable(options.out, 'file');
  const { good, ng } = classifierImages(options);
  const warn = options.onWarning ?? (() => {});
  if (ng.length === 1 && head === 'image')
    warn(
      tr(
        '1 NG image: it is used for training, so no NG image is left for validation — early stopping watches the good images only and no f1 threshold is stored. Add NG images for a classifier you can trust',
        'NG 画像が 1 枚です。学習に使うため検証用の NG 画像が残りません — 早期終了は良品画像だけを見て、f1 しきい値は保存されません。信頼できる分類器には NG 画像を増やしてください',
      ),
    );
  const backbone = await Backbone.load(options.backbone ?? 'efficientnet_lite0', {
    weights: options.weights,
    cacheDir: options.cacheDir,
    onProgress: options.onProgress,
  });
  try {
    const fitted: Fitted =
      head === 'patch'
        ? await fitPatch(options, backbone, good, ng, preprocess, settings, folds)
        : await fitImageHead(options, backbone, good, ng, preprocess, settings, valFraction);
    const { state, scored, all, skipped } = fitted;
    const method = getMethod(state.method);
    const record = (state as ClassifierState).record;
    // the thresholds from the probabilities as the model stores them (float32, as the scorer gives them)
    const goods = scored.filter((s) => s.label === 0);
    const stored = Float32Array.from(goods.map((s) => s.score));
    const images = await Promise.all(
      goods.map(async ({ image }) => {
        const item = all[image];
        const sha256 = (item.bytes ? sha256Bytes(item.bytes) : await sha256File(item.path)).slice(0, 16);
        return { file: item.path, sha256 };
      }),
    );
    const { calibration, thresholds } = summarize(stored, {
      mode: head === 'patch' ? 'kfold' : 'holdout',
      ...(head === 'patch' ? { folds } : {}),
      quantile: OPTIONS.quantile.default,
      display: [0, 1],
      // probabilities: one image above the next is measured in odds
      scale: 'odds',
      images,
    });
    if (thresholds.fpr0 >= 1)
      warn(
        tr(
          `a good calibration image has a probability of NG of 1 (${calibration.highest?.file}): the fpr0 threshold lets no image be NG. ` +
            'Look at it — a mislabelled NG image, or NG training images that share something with it — and train again',
          `校正用の良品画像の NG 確率が 1 です（${calibration.highest?.file}）。fpr0 しきい値ではどの画像も NG になりません。` +
            '確認してください — ラベルの誤った NG 画像か、それと共通点のある NG 学習画像 — そして学習し直してください',
        ),
      );
    for (const w of calibrationWarnings(calibration)) warn(w);
    const all32 = scored.map((s) => Math.fround(s.score));
    const labels = scored.map((s) => s.label);
    const f1 = labels.includes(1) && labels.includes(0) ? bestF1(all32, labels).threshold : null;
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
          channels: backbone.channels,
        },
        preprocess,
        map: method.map,
        training: {
          train_images: record.training.good + record.training.ng,
          skipped,
          seed: settings.seed,
          ...(head === 'patch'
            ? { folds }
            : {
                validation_fraction: valFraction,
                validation_images: record.training.validation.good + record.training.validation.ng,
              }),
        },
        calibration,
        thresholds: { ...thresholds, ...(f1 !== null && f1 < 1 ? { f1 } : {}) },
        ...(options.mmPerPixel !== undefined ? { mm_per_pixel: options.mmPerPixel } : {}),
        ...{ [method.name]: method.describe(state) },
      },
      state,
      calibrationScores: stored,
    };
    await saveModel(options.out, model);
    const curves = `${options.out.slice(0, options.out.length - extname(options.out).length)}.learning.png`;
    await writeFileAtomic(curves, await learningCurves(record.history));
    return { model, curves, seconds: (performance.now() - t0) / 1000, timings: fitted.timings };
  } finally {
    await backbone.dispose();
  }
}

/** A fitted classifier: its state, the calibration images' probabilities, and the images they index. */
interface Fitted {
  state: MethodState;
  scored: { image: number; label: 0 | 1; score: number }[];
  all: readonly ImageItem[];
  skipped: number;
  timings?: Record<string, number>;
}

/** The patch head (the default): an anomaly member and the head, cross-fitted (classify-patch.ts). */
async function fitPatch(
  options: ClassifyTrainOptions,
  backbone: Backbone,
  good: ImageItem[],
  ng: ImageItem[],
  preprocess: Preprocess,
  settings: TrainSettings,
  folds: number,
): Promise<Fitted> {
  const fit = await fitPatchClassifier({
    backbone,
    good,
    ng,
    preprocess,
    member: options.anomalyMethod ?? DEFAULT_ANOMALY_MEMBER,
    folds,
    train: settings,
    batch: options.batch ?? DEFAULT_FIT_BATCH,
    pixelLimit: options.pixelLimit,
    onProgress: options.onProgress,
    onWarning: options.onWarning,
    onPlan: options.onPlan,
    onEpoch: options.onEpoch,
  });
  return {
    state: fit.state,
    scored: fit.calibration,
    all: [...good, ...ng],
    skipped: fit.skipped,
    timings: fit.timings,
  };
}

/**
 * The image head (--head image): logistic regression on the averaged embedding, trained on the images
 * left after a stratified validation split and their augmented copies, calibrated on the validation images.
 */
async function fitImageHead(
  options: ClassifyTrainOptions,
  backbone: Backbone,
  good: ImageItem[],
  ng: ImageItem[],
  preprocess: Preprocess,
  settings: TrainSettings,
  valFraction: number,
): Promise<Fitted> {
  const warn = options.onWarning ?? (() => {});
  const { train, validation } = split([...good, ...ng], valFraction, settings.seed);
  const enabled = new Set(options.augment ?? AUGMENTATIONS);
  const copies = enabled.size ? (options.copies ?? DEFAULT_COPIES) : 0;
  const fitter = new ClassifierFitter({
    channels: backbone.channels,
    train: settings,
    onEpoch: options.onEpoch,
    onWarning: warn,
  });
  let skipped = 0;
  try {
    // training images first, then validation images: an image's index in `all` is its index in the fit
    const all = [...train, ...validation];
    const labelOf = (item: ImageItem) => ({ label: item.label as 0 | 1, category: item.category ?? '' });
    const batch = options.batch ?? DEFAULT_FIT_BATCH;
    const random = mulberry32(settings.seed + 7);
    // augmented copies of training images (PNG bytes at the processed size), embedded a chunk at a time
    // so that only one chunk of them is ever held
    let augmented: { item: ImageItem; owner: number }[] = [];
    const embedAugmented = async () => {
      const chunk = augmented;
      augmented = [];
      // the copies are already at the processed size: scale 1 keeps them as they are
      for await (const b of inputBatches(
        backbone,
        chunk.map((a) => a.item),
        { mode: 'scale', scale: 1 },
        { batch, inOrder: true },
      )) {
        const owners = b.inputs.map(({ image }) => chunk[image.index].owner);
        await fitter.add(
          b.features,
          owners,
          owners.map((o) => labelOf(all[o])),
          owners.map(() => true),
        );
      }
    };
    let done = 0;
    const onError = (_item: ImageItem, error: Error) => {
      skipped++;
      warn(`${tr('left out', '除外')}: ${error.message}`);
    };
    // in the images' order: the classifier's fit follows the order its features come in
    for await (const b of inputBatches(backbone, all, preprocess, { batch, onError, inOrder: true })) {
      const images = b.inputs.map(({ image }) => image.index);
      await fitter.add(
        b.features,
        images,
        images.map((i) => labelOf(all[i])),
        images.map(() => false),
      );
      for (const { image } of b.inputs) {
        if (image.index < train.length) {
          const g = image.image.geometry;
          for (let k = 0; k < copies; k++) {
            const a = augment(
              { rgb: image.image.rgb, width: g.inputWidth, height: g.inputHeight },
              enabled,
              random,
            );
            const bytes = await sharp(a.rgb, { raw: { width: a.width, height: a.height, channels: 3 } })
              .png({ compressionLevel: 0 })
              .toBuffer();
            augmented.push({
              item: { path: `${image.item.path} (augmented ${k + 1})`, bytes, label: image.item.label },
              owner: image.index,
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
    }
    await embedAugmented();
    const validationSet = new Set(validation.map((_, i) => train.length + i));
    const { state, calibration: scored } = fitter.finish(validationSet, {
      augment: copies ? [...enabled] : [],
      copies,
    });
    if (!validation.some((item, i) => item.label === 0 && fitter.has(train.length + i)))
      warn(
        tr(
          'no good image was left for validation: the thresholds come from the training images and will be too low',
          '検証用の良品画像が残りませんでした。しきい値は学習画像から決まるため低すぎます',
        ),
      );
    return { state, scored, all, skipped };
  } finally {
    await fitter.release();
  }
}

/** The classifier's record of a model (its training summary, epochs and calibration). */
export const classifierRecord = (model: KensaModel) => (model.state as ClassifierState).record;

/** The model, refused unless it is a classifier (kensa classify test|predict take classifiers only). */
async function classifierModel(model: string | KensaModel): Promise<KensaModel> {
  const m = typeof model === 'string' ? await loadModel(model) : model;
  if (getMethod(m.meta.method).learning !== 'supervised')
    throw new KensaError(
      'E_FORMAT',
      'this is an anomaly model (kensa train), not a classifier: use kensa test / kensa predict with it',
      { file: typeof model === 'string' ? model : undefined },
    );
  return m;
}

/** kensa classify test: kensa test with a classifier. */
export async function testClassifier(options: TestOptions) {
  return test({ ...options, model: await classifierModel(options.model) });
}

/** kensa classify predict: kensa predict with a classifier. */
export async function predictClassifier(options: PredictOptions) {
  return predict({ ...options, model: await classifierModel(options.model) });
}
