/**
 * One kensa run for bench/padim.ts, in its own process so that its peak RSS is its own: train on
 * DATA/train/good, test on DATA/test (no figures), print one JSON line with timings, metrics, peak RSS.
 *
 *   npx tsx bench/padim-kensa.ts --data DIR --out DIR [--backbone NAME] [--size N] [--d N]
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { test } from '../src/pipeline/evaluate.js';
import { train } from '../src/pipeline/train.js';

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    out: { type: 'string' },
    backbone: { type: 'string', default: 'efficientnet_lite0' },
    size: { type: 'string', default: '224' },
    d: { type: 'string' },
    figures: { type: 'boolean', default: false },
  },
});
const t0 = performance.now();
const trained = await train({
  data: values.data!,
  backbone: values.backbone,
  preprocess: { mode: 'resize', size: Number(values.size) },
  d: values.d ? Number(values.d) : undefined,
  out: join(values.out!, 'model.kensa'),
});
const tested = await test({
  model: trained.model,
  data: values.data!,
  out: join(values.out!, 'test'),
  figures: values.figures,
});
const total = (performance.now() - t0) / 1000;
const { confusion: _c, ...metrics } = tested.metrics;
console.log(
  JSON.stringify({
    total_s: total,
    train_timings_s: trained.timings_s,
    test_timings_s: tested.metrics.timings_s,
    metrics,
    d: trained.model.meta.padim.d,
    n_train: trained.train.length,
    n_validation: trained.validation.length,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  }),
);
