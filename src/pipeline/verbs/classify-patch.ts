/**
 * kensa classify train's patch head (models/classifier/patch-method.ts): what fitting it takes beyond the
 * image head — an anomaly member fitted on the good images (the ensemble, as kensa train's default, or
 * PatchCore; `member`), the anomaly scores of every image as a model
 * that has not seen it would give them (the good images' by fold models, the NG images' by the member),
 * every image's patch rows held for the head, and the head cross-fitted (patch-head.ts, crossFit) so that
 * each image's calibration probability comes from a head trained without it. The calibration images are
 * all the good images (each scored out-of-fold twice over: its anomaly scores and its head), so fpr0 rests
 * on every good image, as kensa train's k-fold calibration does.
 */
import type { Backbone } from '../../backbone/backbone.js';
import type { ImageItem } from '../../data/dataset.js';
import type { Preprocess } from '../../image/preprocess.js';
import { tr } from '../../i18n.js';
import type { EpochRecord, TrainSettings } from '../../models/classifier/head.js';
import { calibrationError } from '../../models/classifier/head.js';
import { crossFit, probabilityOf, type PatchExample } from '../../models/classifier/patch-head.js';
import {
  headScores,
  memberMethod,
  openHeadInputs,
  PATCH_CLASSIFIER,
  patchClassifierFitting,
  type AnomalyMember,
  type PatchClassifierState,
} from '../../models/classifier/patch-method.js';
import type { MemberScore } from '../../models/method.js';
import { EmbedGraph } from '../../models/patch-embedding.js';
import { KensaError } from '../../util/errors.js';
import type { ProgressCallback } from '../../util/progress.js';
import { featureBatches } from '../engine/inspector.js';
import { fitSettings } from '../engine/memory.js';
import { assignFolds, copiesWarning, findCopies } from './train.js';

export interface PatchFitOptions {
  backbone: Backbone;
  good: readonly ImageItem[];
  ng: readonly ImageItem[];
  preprocess: Preprocess;
  /** The anomaly method the head stands on. */
  member: AnomalyMember;
  /** Folds of the cross-fitting (the anomaly member's and the head's). */
  folds: number;
  train: TrainSettings;
  batch: number;
  pixelLimit?: number;
  onProgress?: ProgressCallback;
  onWarning?: (message: string) => void;
  onPlan?: (message: string) => void;
  onEpoch?: (r: EpochRecord) => void;
}

export interface PatchFit {
  state: PatchClassifierState;
  /** Every image's out-of-fold probability; `image` indexes [...good, ...ng]. */
  calibration: { image: number; label: 0 | 1; score: number }[];
  skipped: number;
  /** Seconds of each step: the member's fit and the good images' out-of-fold scores, the NG images, the head. */
  timings: { anomaly: number; ng_images: number; head: number };
}

/** One image's patch rows and anomaly scores, as the head takes them. */
interface Held {
  rows?: Float32Array;
  scores?: Float32Array[];
  /** The ensemble's members' image scores (out-of-fold, good images), for its weights. */
  members?: MemberScore[];
}

export async function fitPatchClassifier(o: PatchFitOptions): Promise<PatchFit> {
  const { backbone, good, ng, preprocess } = o;
  const all = [...good, ...ng];
  const K = o.folds;
  const warn = o.onWarning ?? (() => {});
  const member = o.member;
  const method = memberMethod(member);
  // the memory the member and the held patches need, checked before any work (refused with what fits)
  const settings = await fitSettings(patchClassifierFitting(member), {
    channels: backbone.channels,
    preprocess,
    items: all,
    seed: o.train.seed,
    batch: o.batch,
    pixelLimit: o.pixelLimit,
    onWarning: warn,
    onPlan: o.onPlan,
  });
  // exact copies among the good images share a fold, so that no copy is in the model that scores it
  const { same } = await findCopies(good);
  const copies = copiesWarning(good, same);
  if (copies) warn(copies);
  const fitter = method.createFitter({ ...settings, images: good.length });
  let embed: EmbedGraph | undefined;
  const held: Held[] = all.map(() => ({}));
  const skipped = new Set<number>();
  const run = {
    batch: o.batch,
    pixelLimit: o.pixelLimit,
    onError: (item: ImageItem, error: Error) => {
      const i = all.indexOf(item);
      if (skipped.has(i)) return;
      skipped.add(i);
      warn(`${tr('left out', '除外')}: ${error.message}`);
    },
  };
  // progress: the good images twice (fit, out-of-fold scores), the NG images once
  const total = 2 * good.length + ng.length;
  let done = 0;
  const step = (task: string) =>
    o.onProgress?.({ task, done: Math.min(++done, total), total, unit: 'images' });
  /** Each batch element's part of a batch's array (B equal parts). */
  const slices = (data: Float32Array, B: number) =>
    Array.from({ length: B }, (_, b) => data.slice((b * data.length) / B, ((b + 1) * data.length) / B));
  const t0 = performance.now();
  const seconds = (since: number) => (performance.now() - since) / 1000;
  try {
    // 1. the member's features of the good images, and their patch rows
    for await (const b of featureBatches(backbone, good, preprocess, run, method.stride)) {
      await fitter.add(b.features, b.images, b.owned);
      embed ??= await EmbedGraph.create(backbone.channels);
      const rows = slices(await embed.run(b.features), b.images.length);
      b.images.forEach((image, k) => (held[image].rows = rows[k]));
      for (const _ of b.images) step('classify train: features');
    }
    const readable = good.map((_, i) => i).filter((i) => !skipped.has(i));
    if (readable.length < 2)
      throw new KensaError(
        'E_ARGUMENT',
        `the patch classifier needs at least 2 readable good images; ${readable.length} could be read`,
      );
    // 2. the good images' anomaly scores, each from a member fitted without its fold
    const goodFolds = assignFolds(good.length, K, o.train.seed, same);
    for (let f = 0; f < K; f++) {
      const indices = readable.filter((i) => goodFolds[i] === f);
      if (!indices.length) continue;
      const list = indices.map((i) => good[i]);
      const fold = {
        images: new Set(indices),
        features: async function* () {
          for await (const b of featureBatches(backbone, list, preprocess, run, method.stride))
            yield { features: b.features, images: b.images.map((i) => indices[i]) };
        },
      };
      const scorer = await fitter.without(fold);
      try {
        for await (const b of featureBatches(backbone, list, preprocess, run, method.stride)) {
          const got = await scorer.score(b.features);
          const scores = headScores(member, got).map((g) => slices(g, b.images.length));
          b.images.forEach((i, k) => {
            held[indices[i]].scores = scores.map((g) => g[k]);
            held[indices[i]].members = got.peaks?.members?.map((m) => ({ score: m.score[k], low: m.low[k] }));
          });
          for (const _ of b.images) step(`classify train: anomaly scores, fold ${f + 1}/${K}`);
        }
      } finally {
        await scorer.release();
      }
    }
    // 3. the member from every good image (the ensemble weighed by the good images' out-of-fold scores,
    // as kensa train weighs it); the NG images' rows and anomaly scores from it
    let anomaly = await fitter.finish();
    if (method.weigh) {
      const members = good.flatMap((_, i) => (held[i].members ? [held[i].members] : []));
      if (!members.length)
        throw new KensaError('E_RUNTIME', `the ${member} scorer gave no member scores to weigh`);
      anomaly = method.weigh(anomaly, members).state;
    }
    const anomalySeconds = seconds(t0);
    const t1 = performance.now();
    // the member's scores as the patch classifier's scorer takes them
    const scorer = await openHeadInputs(anomaly);
    try {
      for await (const b of featureBatches(backbone, ng, preprocess, run, method.stride)) {
        const { rows, scores } = await scorer.run(b.features);
        const r = slices(rows, b.images.length);
        const g = scores.map((s) => slices(s, b.images.length));
        b.images.forEach(
          (image, k) => (held[good.length + image] = { rows: r[k], scores: g.map((s) => s[k]) }),
        );
        for (const _ of b.images) step('classify train: NG images');
      }
    } finally {
      await scorer.release();
    }
    const ngSeconds = seconds(t1);
    const t2 = performance.now();
    // 4. the head, cross-fitted over folds of each class
    const ngFolds = assignFolds(ng.length, K, o.train.seed + 1);
    const used = all.map((_, i) => i).filter((i) => held[i].rows && held[i].scores);
    const labelOf = (i: number): 0 | 1 => (i < good.length ? 0 : 1);
    if (!used.some((i) => labelOf(i) === 1))
      throw new KensaError('E_ARGUMENT', 'after leaving out unreadable images, no NG image is left');
    const examples: PatchExample[] = used.map((i) => ({
      rows: held[i].rows!,
      scores: held[i].scores!,
      label: labelOf(i),
    }));
    const folds = used.map((i) => (i < good.length ? goodFolds[i] : ngFolds[i - good.length]));
    const head = crossFit(
      examples,
      folds,
      K,
      o.train,
      (d) => o.onProgress?.({ task: 'classify train: head', done: d, total: 2, unit: 'steps' }),
      o.onEpoch,
    );
    const labels = examples.map((e) => e.label);
    const scores = head.outOfFold.map((z) => probabilityOf(head.params, z));
    const categories: Record<string, number> = {};
    for (const i of used) {
      const c = all[i].category ?? (labelOf(i) ? 'ng' : 'good');
      categories[c] = (categories[c] ?? 0) + 1;
    }
    const count = (label: 0 | 1) => labels.filter((l) => l === label).length;
    if (count(1) < 2 * K)
      warn(
        tr(
          `${count(1)} NG images for ${K} folds: each fold's head learns from very few of them, so the calibration is rough. Add NG images (at least ${2 * K})`,
          `NG 画像 ${count(1)} 枚を ${K} 分割しています。各分割のヘッドが学ぶ NG 画像がごく少ないため、校正は粗くなります。NG 画像を増やしてください（${2 * K} 枚以上）`,
        ),
      );
    const state: PatchClassifierState = {
      method: PATCH_CLASSIFIER,
      channels: backbone.channels,
      anomaly,
      head: head.params,
      record: {
        training: {
          good: count(0),
          ng: count(1),
          categories,
          validation: { good: 0, ng: 0 },
          folds: K,
          fold_epochs: head.foldEpochs,
          augment: [],
          copies: 0,
          epochs: head.history.length,
          best_epoch: head.bestEpoch,
          learning_rate: o.train.learningRate,
          weight_decay: o.train.weightDecay,
          patience: o.train.patience,
          seed: o.train.seed,
        },
        history: head.history,
        calibration: {
          temperature: head.params.temperature,
          ece_before: calibrationError(
            head.outOfFold.map((z) => probabilityOf({ temperature: 1 }, z)),
            labels,
          ),
          ece_after: calibrationError(scores, labels),
        },
      },
    };
    return {
      state,
      calibration: used.map((image, k) => ({ image, label: labels[k], score: scores[k] })),
      skipped: skipped.size,
      timings: { anomaly: anomalySeconds, ng_images: ngSeconds, head: seconds(t2) },
    };
  } finally {
    await fitter.release();
    await embed?.release();
  }
}
