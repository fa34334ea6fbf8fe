/**
 * kensa update: new good images (e.g. false alarms a reviewer marked as good parts) added to a fitted
 * model without fitting it again from scratch, and the thresholds recalibrated.
 *
 *   PaDiM      the sums are additive: the scatter and mean of the first images come back from the stored
 *              statistics and the new images' sums are added, so the result is the fit on all of them
 *   PatchCore  the bank keeps every row and takes the coreset share of the new patches, the ones farthest
 *              from the bank and from each other (the greedy k-center continued from the bank)
 *
 * Calibration: each new image is scored as new by a model of every other image, old and new (leave-one-
 * out where the model was calibrated so and the method has it; else k-fold over the new images), and its
 * score joins the stored scores of the earlier images, which were scored the same way when they came
 * (by models without the images added since, so a little high: the thresholds err on the side of no false
 * alarm). `kensa train` on all the images scores every image again.
 *
 * Without --out the model file is replaced, and the one it replaces is kept beside it (NAME.previous.kensa).
 */
import { basename, dirname, join } from 'node:path';
import { goodImages, type ImageItem } from '../../data/dataset.js';
import { copyFileAtomic } from '../../io/atomic.js';
import type { Scorer } from '../../models/method.js';
import { getMethod } from '../../models/registry.js';
import { checkOptions, OPTIONS } from '../../options.js';
import { KensaError } from '../../util/errors.js';
import { runProgress, type ProgressCallback } from '../../util/progress.js';
import { KENSA_VERSION } from '../../version.js';
import { calibrationWarnings, summarize, type CalibrationImage } from '../contracts/calibration.js';
import {
  inputGrid,
  loadModel,
  methodMeta,
  saveModel,
  type KensaModel,
  type ModelUpdate,
} from '../contracts/model-file.js';
import { backboneFor, DEFAULT_FIT_BATCH, featureBatches, scoreImages } from '../engine/inspector.js';
import { fitSettings } from '../engine/memory.js';
import { checkNewModel, checkWritable } from '../outputs/paths.js';
import { assignFolds, copiesWarning, DEFAULT_FOLDS, findCopies } from './train.js';
import { tr } from '../../i18n.js';

export interface UpdateOptions {
  /** The model file to add images to. */
  model: string;
  /**
   * New good images: folders (train/good of a data set, or folders of good images), globs, image lists
   * (the report's review.txt) or image files; or the images.
   */
  add: string | string[] | ImageItem[];
  /** Where to write the updated model (default: replace `model`, keeping the old one as NAME.previous.kensa). */
  out?: string;
  /** Replace a model file already at `out`. */
  force?: boolean;
  weights?: string;
  cacheDir?: string;
  batch?: number;
  pixelLimit?: number;
  onProgress?: ProgressCallback;
  onWarning?: (message: string) => void;
  onPlan?: (message: string) => void;
}

export interface UpdateResult {
  model: KensaModel;
  /** The file written. */
  out: string;
  /** Where the replaced model was kept (an update in place). */
  previous?: string;
  /** The images added. */
  added: ImageItem[];
  /** Images left out because the model holds the same content already. */
  alreadyIn: string[];
  /** Unreadable images left out. */
  skipped: string[];
  /** The model before: its fpr0 and its calibration images. */
  before: { fpr0: number; calibration: number; trainImages: number };
  timings_s: Record<string, number>;
}

/** Where an update in place keeps the model it replaces: NAME.previous.kensa beside it. */
export function previousModelPath(model: string): string {
  const name = basename(model);
  const stem = name.toLowerCase().endsWith('.kensa') ? name.slice(0, -'.kensa'.length) : name;
  return join(dirname(model), `${stem}.previous.kensa`);
}

export async function update(options: UpdateOptions): Promise<UpdateResult> {
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const lap = (name: string, since: number) => (timings[name] = (performance.now() - since) / 1000);
  checkOptions(options, ['batch', 'pixelLimit']);
  const inPlace = options.out === undefined;
  const out = options.out ?? options.model;
  if (!inPlace) await checkNewModel(out, options.force, 'kensa update');
  await checkWritable(out, 'file');
  const model = await loadModel(options.model);
  const { meta } = model;
  const method = getMethod(meta.method);
  if (!method.resume)
    throw new KensaError(
      'E_ARGUMENT',
      `kensa update adds good images to a model fitted on good images (patchcore, padim, ensemble); a ${meta.method} model learns from labelled images: train it again with the new images (kensa classify train)`,
      { file: options.model },
    );

  const specs = typeof options.add === 'string' ? [options.add] : options.add;
  const named = specs.every((a) => typeof a === 'string');
  const given = named
    ? goodImages(specs as string[], { onWarning: options.onWarning })
    : (specs as ImageItem[]);
  const where = named ? specs.join(', ') : 'the given list';
  if (!given.length)
    throw new KensaError('E_NOT_FOUND', 'no images to add: the list is empty', { file: where });

  // images the model holds already (the same content as one of its calibration images) are left out
  const known = new Set((meta.calibration.images ?? []).map((im) => im.sha256).filter(Boolean));
  const { hashes: givenHashes } = await findCopies(given);
  const alreadyIn: string[] = [];
  const items: ImageItem[] = [];
  given.forEach((item, i) => {
    const h = givenHashes[i]?.slice(0, 16);
    if (h && known.has(h)) alreadyIn.push(item.path);
    else items.push(item);
  });
  if (alreadyIn.length)
    options.onWarning?.(
      tr(
        `${alreadyIn.length} of the images given ${alreadyIn.length === 1 ? 'is' : 'are'} in the model already (the same content as its images), left out: `,
        `指定した画像のうち ${alreadyIn.length} 枚はモデルに既にあります（同じ内容の画像）。除外: `,
      ) + `${alreadyIn.slice(0, 3).join(', ')}${alreadyIn.length > 3 ? ', ...' : ''}`,
    );
  if (!items.length)
    throw new KensaError(
      'E_ARGUMENT',
      `every image given is in the model already (the same content as its images): nothing to add`,
      { file: where },
    );
  const { same, hashes } = await findCopies(items);
  const copies = copiesWarning(items, same);
  if (copies) options.onWarning?.(copies);

  let s = performance.now();
  const backbone = await backboneFor(model, {
    weights: options.weights,
    cacheDir: options.cacheDir,
  });
  lap('load_backbone', s);
  // the run's image passes: the new images' features, then their calibration scores
  const runAt = runProgress(2 * items.length, options.onProgress);
  let passes = 0;
  const steps = (task: string) => (done: number, total: number) =>
    runAt(passes)({ task, done, total, unit: 'steps' });
  let fitter: Awaited<ReturnType<NonNullable<typeof method.resume>>> | undefined;
  try {
    const block = methodMeta(meta);
    const stateGrid = method.inputGrid(model.state);
    const settings = await fitSettings(method, {
      channels: meta.backbone.channels,
      preprocess: meta.preprocess,
      items,
      grid: stateGrid ?? inputGrid(meta.preprocess, method.stride),
      seed: meta.training.seed,
      d: typeof block.d === 'number' ? block.d : undefined,
      coreset: typeof block.coreset === 'number' ? block.coreset : undefined,
      batch: options.batch ?? DEFAULT_FIT_BATCH,
      pixelLimit: options.pixelLimit,
      onWarning: options.onWarning,
      onPlan: options.onPlan,
    });
    s = performance.now();
    fitter = await method.resume(model.state, settings, steps(`update: ${method.name} model so far`));
    lap('resume', s);

    const skipped: string[] = [];
    const skippedSet = new Set<string>();
    const run = {
      batch: options.batch ?? DEFAULT_FIT_BATCH,
      pixelLimit: options.pixelLimit,
      inputSize: stateGrid && { height: stateGrid[0] * method.stride, width: stateGrid[1] * method.stride },
      onError: (item: ImageItem, error: Error) => {
        if (skippedSet.has(item.path)) return;
        skippedSet.add(item.path);
        skipped.push(item.path);
        options.onWarning?.(`${tr('skipping an image', '画像を飛ばします')}: ${error.message}`);
      },
    };
    s = performance.now();
    let used = 0;
    for await (const batch of featureBatches(backbone, items, meta.preprocess, run, method.stride)) {
      await fitter.add(batch.features, batch.images, batch.owned);
      used = batch.completed;
      passes = used + skipped.length;
      runAt(0)({
        task: `update (${method.name}): features`,
        done: passes,
        total: items.length,
        unit: 'images',
      });
    }
    passes = items.length;
    if (used === 0)
      throw new KensaError(
        'E_ARGUMENT',
        `none of the ${items.length} images could be read; nothing was added`,
        {
          file: where,
        },
      );
    lap('fit_features', s);

    // the new images' calibration scores, each from a model of every other image
    s = performance.now();
    const scored = new Map<string, number>();
    const scoreWith = async (scorer: Scorer, list: ImageItem[], task: string) => {
      try {
        for await (const r of scoreImages(backbone, scorer, meta.map, meta.preprocess, list, {
          ...run,
          batch: options.batch,
          onProgress: runAt(items.length + scored.size),
          task,
        })) {
          scored.set(r.item.path, r.score);
          passes = items.length + scored.size;
        }
      } finally {
        await scorer.release();
      }
    };
    const readable = items.map((_, i) => i).filter((i) => !skippedSet.has(items[i].path));
    const loo =
      meta.calibration.mode === 'loo' && fitter.leaveOneOut
        ? await fitter.leaveOneOut(steps('update: leave-one-out model'))
        : undefined;
    let folds = 0;
    if (loo)
      await scoreWith(
        loo,
        readable.map((i) => items[i]),
        'update: calibration (leave-one-out)',
      );
    else {
      folds = Math.min(meta.training.folds ?? DEFAULT_FOLDS, readable.length);
      const fold = assignFolds(items.length, folds, meta.training.seed, same);
      for (let f = 0; f < folds; f++) {
        const indices = readable.filter((i) => fold[i] === f);
        const list = indices.map((i) => items[i]);
        await scoreWith(
          await fitter.without(
            {
              images: new Set(indices),
              features: async function* () {
                for await (const b of featureBatches(backbone, list, meta.preprocess, run, method.stride))
                  yield { features: b.features, images: b.images.map((i) => indices[i]) };
              },
            },
            steps(`update: fold ${f + 1}/${folds} model`),
          ),
          list,
          `update: calibration, fold ${f + 1}/${folds}`,
        );
      }
    }
    lap('calibration', s);
    s = performance.now();
    const state = await fitter.finish(steps(`update: ${method.name} model`));
    lap('fit_finish', s);

    // the calibration: the stored scores, then the new images' (in the order given)
    const added = readable.map((i) => items[i]).filter((item) => scored.has(item.path));
    const oldScores = model.calibrationScores;
    const scores = new Float32Array(oldScores.length + added.length);
    scores.set(oldScores);
    added.forEach((item, k) => (scores[oldScores.length + k] = scored.get(item.path)!));
    const hashOf = new Map(items.map((item, i) => [item.path, hashes[i]?.slice(0, 16)]));
    const images: CalibrationImage[] = [
      ...(meta.calibration.images ??
        Array.from(oldScores, (_, i) => ({ file: `calibration image ${i + 1}` }))),
      ...added.map((item) => ({
        file: item.path,
        ...(hashOf.get(item.path) ? { sha256: hashOf.get(item.path) } : {}),
      })),
    ];
    const { calibration, thresholds } = summarize(scores, {
      mode: meta.calibration.mode,
      ...(meta.calibration.folds !== undefined ? { folds: meta.calibration.folds } : {}),
      quantile: meta.calibration.quantile ?? OPTIONS.quantile.default,
      display: [meta.calibration.display[0], 1.5 * scores.reduce((a, b) => Math.max(a, b), 0)],
      images,
      excluded: meta.calibration.excluded,
    });
    const before = {
      fpr0: meta.thresholds.fpr0,
      calibration: meta.calibration.scores.count,
      trainImages: meta.training.train_images,
    };
    const record: ModelUpdate = {
      at: new Date().toISOString(),
      kensa_version: KENSA_VERSION,
      added: used,
      skipped: skipped.length + alreadyIn.length,
      calibration: loo ? 'loo' : 'kfold',
      ...(folds ? { folds } : {}),
      fpr0_before: before.fpr0,
      fpr0_after: thresholds.fpr0,
    };
    const kept = { f1: meta.thresholds.f1, custom: meta.thresholds.custom };
    if (kept.custom !== undefined)
      options.onWarning?.(
        tr(
          `the model's own threshold ${kept.custom} (kensa threshold --set) is kept as it was set; fpr0 is now ${thresholds.fpr0.toPrecision(4)}. ` +
            'Check it with kensa test, or take it back with kensa threshold --unset',
          `モデル独自のしきい値 ${kept.custom}（kensa threshold --set）は設定どおり残しました。fpr0 は ${thresholds.fpr0.toPrecision(4)} になりました。` +
            'kensa test で確かめるか、kensa threshold --unset で外してください',
        ),
      );
    if (kept.f1 !== undefined)
      options.onWarning?.(
        tr(
          `the f1 threshold was chosen on a test set with the model before this update and is kept as it was (${kept.f1.toPrecision(4)}); ` +
            'kensa test --save-model chooses it again',
          `f1 しきい値は更新前のモデルでテストセットから選んだもので、そのまま残しました（${kept.f1.toPrecision(4)}）。` +
            'kensa test --save-model で選び直せます',
        ),
      );
    const updated: KensaModel = {
      meta: {
        ...meta,
        kensa_version: KENSA_VERSION,
        training: {
          ...meta.training,
          train_images: meta.training.train_images + used,
          updates: [...(meta.training.updates ?? []), record],
        },
        calibration,
        thresholds: {
          ...thresholds,
          ...(kept.f1 !== undefined ? { f1: kept.f1 } : {}),
          ...(kept.custom !== undefined ? { custom: kept.custom } : {}),
        },
        [method.name]: method.describe(state),
      },
      state,
      calibrationScores: scores,
      ...(model.backboneOnnx ? { backboneOnnx: model.backboneOnnx } : {}),
    };
    for (const w of calibrationWarnings(calibration)) options.onWarning?.(w);
    s = performance.now();
    let previous: string | undefined;
    if (inPlace) {
      previous = previousModelPath(options.model);
      await copyFileAtomic(options.model, previous);
    }
    await saveModel(out, updated);
    lap('write_model', s);
    lap('total', t0);
    return { model: updated, out, previous, added, alreadyIn, skipped, before, timings_s: timings };
  } finally {
    await fitter?.release();
    await backbone.dispose();
  }
}
