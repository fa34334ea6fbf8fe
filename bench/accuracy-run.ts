/**
 * One variant of bench/accuracy.ts, in its own process so that its peak RSS is its own: train on
 * DATA/train/good with the given options, test on DATA/test (no figures), print one JSON line with the
 * metrics, recall and false alarms at fpr0, how the calibration scores compare with test/good's under
 * the final model, timings, peak RSS and the model's size, and every image's score (the training
 * images' calibration scores and the test images' scores with their labels, for bench/accuracy.ts's
 * combinations of variants).
 *
 *   npx tsx bench/accuracy-run.ts --data DIR --out DIR --options '{"method":"padim",...}'
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { test } from '../src/pipeline/verbs/test.js';
import { train, type TrainOptions } from '../src/pipeline/verbs/train.js';
import { quantile } from '../src/util/stats.js';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    out: { type: 'string' },
    options: { type: 'string', default: '{}' },
  },
});
const options = JSON.parse(values.options!) as Partial<TrainOptions>;
const t0 = performance.now();
const modelPath = join(values.out!, 'model.kensa');
const trained = await train({ ...options, data: values.data!, out: modelPath });
const trainS = (performance.now() - t0) / 1000;
const tested = await test({
  model: trained.model,
  data: values.data!,
  out: join(values.out!, 'test'),
  figures: false,
});
const testS = (performance.now() - t0) / 1000 - trainS;
const m = tested.metrics;
const good = tested.images.filter((i) => i.label === 0).map((i) => i.score);
const defective = tested.images.filter((i) => i.label === 1).map((i) => i.score);
const calibration = Array.from(trained.model.calibrationScores);
const fpr0 = trained.model.meta.thresholds.fpr0;
const highestGood = Math.max(...good);
console.log(
  JSON.stringify({
    image_auroc: m.image_auroc,
    pixel_auroc: m.pixel_auroc,
    aupro: m.aupro,
    recall_fpr0: m.confusion.fpr0.recall,
    false_alarms_fpr0: m.confusion.fpr0.fp,
    good: good.length,
    defective: defective.length,
    // the share of defective images above every new good image: what a threshold at the highest test/good
    // score would catch (an upper bound for any zero-false-alarm threshold on this test set)
    above_every_good: defective.filter((s) => s > highestGood).length / Math.max(1, defective.length),
    fpr0,
    highest_good: highestGood,
    calibration_median: quantile(calibration, 0.5),
    good_median: quantile(good, 0.5),
    median_ratio: quantile(calibration, 0.5) / quantile(good, 0.5),
    good_above_fpr0: good.filter((s) => s > fpr0).length / Math.max(1, good.length),
    calibration_mode: trained.model.meta.calibration.mode,
    train_s: trainS,
    test_s: testS,
    calibration_s: trained.timings_s.calibration ?? 0,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    model_mb: statSync(modelPath).size / 1e6,
    scores: {
      calibration: Object.fromEntries(
        (trained.model.meta.calibration.images ?? []).map((image, i) => [image.file, calibration[i]]),
      ),
      test: tested.images.map((i) => [i.file, i.label, i.score]),
    },
  }),
);
