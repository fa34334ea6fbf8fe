/**
 * One kensa run for bench/mtd.ts, in its own process so that its peak RSS is its own: train on
 * DATA/train/good, test on DATA/test (no figures), print one JSON line with timings, metrics, peak RSS,
 * model size, and the calibration's false-alarm rate on test/good.
 *
 *   npx tsx bench/mtd-kensa.ts --data DIR --out DIR --method padim|patchcore [--size 224] [--square]
 *                              [--val-fraction F] [--tile T] [--scale F] [--backbone NAME] [--coreset F]
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Preprocess } from '../src/image/preprocess.js';
import { test } from '../src/pipeline/verbs/test.js';
import { train } from '../src/pipeline/verbs/train.js';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    out: { type: 'string' },
    method: { type: 'string', default: 'patchcore' },
    backbone: { type: 'string', default: 'efficientnet_lite0' },
    size: { type: 'string', default: '224' },
    square: { type: 'boolean', default: false },
    scale: { type: 'string' },
    tile: { type: 'string' },
    'val-fraction': { type: 'string' },
    coreset: { type: 'string' },
    figures: { type: 'boolean', default: false },
  },
});
const tile = values.tile ? { tile: { size: Number(values.tile), overlap: 96 } } : {};
const preprocess: Preprocess = values.scale
  ? { mode: 'scale', scale: Number(values.scale), ...tile }
  : { mode: values.square ? 'resize' : 'fit', size: Number(values.size), ...tile };
const t0 = performance.now();
const modelPath = join(values.out!, 'model.kensa');
const trained = await train({
  data: values.data!,
  method: values.method,
  backbone: values.backbone,
  preprocess,
  valFraction: values['val-fraction'] ? Number(values['val-fraction']) : undefined,
  coreset: values.coreset ? Number(values.coreset) : undefined,
  out: modelPath,
});
const trainS = (performance.now() - t0) / 1000;
const tested = await test({
  model: trained.model,
  data: values.data!,
  out: join(values.out!, 'test'),
  figures: values.figures,
});
const total = (performance.now() - t0) / 1000;
const { confusion, ...metrics } = tested.metrics;
console.log(
  JSON.stringify({
    method: values.method,
    preprocess,
    total_s: total,
    train_s: trainS,
    test_s: total - trainS,
    train_timings_s: trained.timings_s,
    test_timings_s: tested.metrics.timings_s,
    metrics,
    at_fpr0: {
      fpr: confusion.fpr0.fpr,
      recall: confusion.fpr0.recall,
      fp: confusion.fpr0.fp,
      tn: confusion.fpr0.tn,
    },
    calibration: trained.model.meta.calibration,
    model_bytes: statSync(modelPath).size,
    n_train: trained.train.length,
    n_calibration: trained.calibration.length,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  }),
);
