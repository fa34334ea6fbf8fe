/**
 * How many NG images does a supervised classifier need, and does it add to the anomaly model? On Magnetic
 * Tile Defects (or --data): for k = 1, 5 and 20, k NG images of each defect type are moved (seeded) from
 * test/ into train/<type>/; `kensa classify train --head H` learns from them and train/good for each head
 * (patch: the max-pooled patch head on the ensemble's patch scores, the default; patch-patchcore: the same
 * head on PatchCore's alone, `--anomaly-method patchcore`; image: logistic regression on
 * the averaged embedding), and `kensa classify test` scores the remaining test images. Beside them, on
 * exactly the same remaining images: the unsupervised default method (trained on train/good only, same
 * backbone; or the model given with --anomaly-model), and each head combined with it — each score divided by its own model's fpr0
 * threshold and the larger taken (NG when either model says NG; no parameter fitted on the test images).
 * Per k: image AUROC, recall at each model's own fpr0 threshold with the false alarms it gives, the same
 * with the model's highest calibration image left out (`kensa threshold --exclude` of the one image that
 * sets fpr0, as train's summary names it), recall at zero false alarms on the test images themselves (the
 * threshold just above the highest good score), and training time. Prints a Markdown table for
 * BENCHMARKS.md; writes bench/out/classify.json.
 *
 *   npm run build
 *   npx tsx bench/classify.ts [--data ../shared/datasets/mtd] [--anomaly-model FILE (else trained here)]
 *       [--k 1,5,20] [--heads patch,patch-patchcore,image] [--seed 0]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { auroc } from '../src/metrics/classification.js';
import { loadModel } from '../src/pipeline/contracts/model-file.js';
import { mulberry32, shuffledIndices } from '../src/util/random.js';

const here = new URL('.', import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    data: { type: 'string', default: resolve(here, '../../shared/datasets/mtd') },
    'anomaly-model': { type: 'string' },
    k: { type: 'string', default: '1,5,20' },
    heads: { type: 'string', default: 'patch,image' },
    seed: { type: 'string', default: '0' },
  },
});
const data = resolve(values.data!);
const cli = resolve(here, '../dist/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'kensa-bench-classify-'));
const kensa = (...args: string[]) =>
  execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
const timed = (...args: string[]) => {
  const t0 = performance.now();
  kensa(...args);
  return (performance.now() - t0) / 1000;
};

// the unsupervised model and its scores on every test image
let anomalyModel = values['anomaly-model'];
let anomalyTrain: number | undefined;
if (!anomalyModel) {
  anomalyModel = join(work, 'anomaly.kensa');
  anomalyTrain = timed('train', '--data', data, '--out', anomalyModel);
}
kensa(
  'predict',
  '--model',
  anomalyModel,
  '--out',
  join(work, 'anomaly'),
  '--no-overlays',
  join(data, 'test'),
);
const anomaly = JSON.parse(readFileSync(join(work, 'anomaly', 'predictions.json'), 'utf8')) as {
  threshold: number;
  predictions: { file: string; score: number }[];
};
const anomalyScore = new Map(anomaly.predictions.map((p) => [resolve(p.file), p.score]));

/** A model's second-highest calibration score: its fpr0 with the highest calibration image left out. */
const nextThreshold = async (file: string) => (await loadModel(file)).meta.calibration.next?.score;
const anomalyNext = await nextThreshold(anomalyModel);

interface Scores {
  scores: number[];
  labels: number[];
  threshold: number;
  next?: number;
}
function measure({ scores, labels, threshold, next }: Scores) {
  const pos = scores.filter((_, i) => labels[i] === 1);
  const neg = scores.filter((_, i) => labels[i] === 0);
  const topGood = Math.max(...neg);
  return {
    image_auroc: auroc(scores, labels).value,
    recall_at_fpr0: pos.filter((s) => s > threshold).length / pos.length,
    false_alarms_at_fpr0: neg.filter((s) => s > threshold).length,
    // `kensa threshold --exclude` of the one calibration image that sets fpr0
    recall_at_next: next === undefined ? undefined : pos.filter((s) => s > next).length / pos.length,
    false_alarms_at_next: next === undefined ? undefined : neg.filter((s) => s > next).length,
    recall_at_zero_fa_on_test: pos.filter((s) => s > topGood).length / pos.length,
    good: neg.length,
    defective: pos.length,
  };
}

const types = readdirSync(join(data, 'test'))
  .filter((t) => t !== 'good')
  .sort();
const rows: Record<string, unknown>[] = [];
for (const k of values.k!.split(',').map(Number)) {
  // the k-shot data set, as symbolic links
  const root = join(work, `k${k}`);
  const link = (from: string, to: string) => {
    mkdirSync(resolve(to, '..'), { recursive: true });
    symlinkSync(from, to);
  };
  for (const f of readdirSync(join(data, 'train', 'good')))
    link(join(data, 'train', 'good', f), join(root, 'train', 'good', f));
  for (const f of readdirSync(join(data, 'test', 'good')))
    link(join(data, 'test', 'good', f), join(root, 'test', 'good', f));
  const random = mulberry32(Number(values.seed) + k);
  for (const type of types) {
    const files = readdirSync(join(data, 'test', type)).sort();
    const order = shuffledIndices(files.length, random);
    const take = Math.min(k, files.length - 1);
    order.forEach((at, j) =>
      link(join(data, 'test', type, files[at]), join(root, j < take ? 'train' : 'test', type, files[at])),
    );
  }
  const heads: Record<string, unknown> = {};
  let unsupervised: ReturnType<typeof measure> | undefined;
  for (const head of values.heads!.split(',')) {
    const model = join(work, `k${k}-${head}.kensa`);
    // patch-M: the patch head on anomaly method M
    const [name, member] = head.split('-');
    const on = member ? ['--anomaly-method', member] : [];
    const trainSeconds = timed('classify', 'train', '--data', root, '--out', model, '--head', name, ...on);
    const out = join(work, `k${k}-${head}-test`);
    kensa('classify', 'test', '--model', model, '--data', root, '--out', out, '--no-figures');
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    const predictions = JSON.parse(readFileSync(join(out, 'predictions.json'), 'utf8')) as {
      threshold: number;
      predictions: { file: string; score: number }[];
    };
    // the same remaining test images for every score (the link's target names the original file)
    const test = predictions.predictions.map((p) => {
      const original = resolve(
        data,
        'test',
        resolve(p.file, '..').split('/').at(-1)!,
        p.file.split('/').at(-1)!,
      );
      return {
        label: original.includes('/test/good/') ? 0 : 1,
        probability: p.score,
        anomaly: anomalyScore.get(original)!,
      };
    });
    const labels = test.map((t) => t.label);
    unsupervised = measure({
      scores: test.map((t) => t.anomaly),
      labels,
      threshold: anomaly.threshold,
      next: anomalyNext,
    });
    heads[head] = {
      ...measure({
        scores: test.map((t) => t.probability),
        labels,
        threshold: predictions.threshold,
        next: await nextThreshold(model),
      }),
      combined: measure({
        scores: test.map((t) =>
          Math.max(t.probability / predictions.threshold, t.anomaly / anomaly.threshold),
        ),
        labels,
        threshold: 1,
      }),
      train_s: trainSeconds,
      calibration_error_test: metrics.calibration_error,
    };
  }
  rows.push({ k, ng_train: types.length * k, heads, unsupervised });
  console.error(`k = ${k}: done`);
}

const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
const out = {
  commit,
  machine: `${cpus()[0].model}, ${cpus().length} cores`,
  data,
  anomaly_train_s: anomalyTrain,
  rows,
};
mkdirSync(join(here, 'out'), { recursive: true });
writeFileSync(join(here, 'out', 'classify.json'), JSON.stringify(out, null, 2) + '\n');
const f = (v: unknown, d = 4) => (typeof v === 'number' ? v.toFixed(d) : '—');
const pct = (v: unknown) => (typeof v === 'number' ? `${(100 * v).toFixed(1)} %` : '—');
console.log(`\n${data}, ${out.machine}, commit ${commit}\n`);
console.log(
  '| k NG per type | NG in training | model | image AUROC | recall at its fpr0 | false alarms at its fpr0 | recall at fpr0 without its highest calibration image | recall at 0 false alarms (test) | train time |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows as {
  k: number;
  ng_train: number;
  heads: Record<
    string,
    ReturnType<typeof measure> & { combined: ReturnType<typeof measure>; train_s: number }
  >;
  unsupervised: ReturnType<typeof measure>;
}[]) {
  const line = (name: string, m: ReturnType<typeof measure>, seconds?: number) =>
    console.log(
      `| ${r.k} | ${r.ng_train} | ${name} | ${f(m.image_auroc)} | ${pct(m.recall_at_fpr0)} | ${m.false_alarms_at_fpr0}/${m.good} | ${m.recall_at_next === undefined ? '—' : `${pct(m.recall_at_next)} (${m.false_alarms_at_next}/${m.good})`} | ${pct(m.recall_at_zero_fa_on_test)} | ${seconds !== undefined ? `${seconds.toFixed(0)} s` : ''} |`,
    );
  for (const [head, m] of Object.entries(r.heads)) line(`${head} head`, m, m.train_s);
  line('unsupervised', r.unsupervised);
  for (const [head, m] of Object.entries(r.heads)) line(`${head} head + unsupervised`, m.combined);
}
