/**
 * High resolution: camera-sized images (bench/make-highres.ts: 3872×3200, small dust specks and thin
 * scratches) through kensa's CLI, tiled, and through the two references at a square size they can handle,
 * in one run. Per kensa method: `kensa train`, `kensa test` (image/pixel AUROC, AUPRO, false alarms at
 * fpr0), and `kensa predict` on every test image, timed end to end, with the share of the defects (the
 * connected components of the masks) that a reported region overlaps. Peak RSS of every command. Prints a
 * Markdown table for BENCHMARKS.md and writes bench/out/highres.json.
 *
 *   npm run build
 *   npx tsx bench/make-highres.ts --out /tmp/highres
 *   npx tsx bench/highres.ts --data /tmp/highres --python /path/to/venv/bin/python
 *       [--runs kensa-padim,kensa-patchcore,ref-padim,ref-patchcore]
 *       ["--padim=--scale 0.5 --tile 256 --overlap 64"] ["--patchcore=--scale 0.5 --tile 512"]
 *       [--ref-size 512]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { labelComponents } from '../src/postprocess/regions.js';
import { referenceArgs, referenceWeights } from './reference-weights.js';

const here = new URL('.', import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    python: { type: 'string', default: 'python3' },
    references: { type: 'string', default: resolve(here, '../../shared/reference') },
    runs: { type: 'string', default: 'kensa-padim,kensa-patchcore,ref-padim,ref-patchcore' },
    padim: { type: 'string', default: '--scale 0.5 --tile 256 --overlap 64' },
    patchcore: { type: 'string', default: '--scale 0.5 --tile 512' },
    'ref-size': { type: 'string', default: '512' },
  },
});
if (!values.data) throw new Error('--data is required (write it with bench/make-highres.ts)');
const data = resolve(values.data);
const cli = resolve(here, '../dist/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'kensa-bench-highres-'));
// the references' weights file, written once for both
const { spec, pth } = await referenceWeights('efficientnet_lite0', work);

/** Runs a command under /usr/bin/time: wall seconds and peak RSS (MB). */
function timed(command: string, args: string[]): { wall_s: number; peak_rss_mb: number; stdout: string } {
  const rss = join(work, 'rss.txt');
  const start = performance.now();
  const stdout = execFileSync('/usr/bin/time', ['-f', '%M', '-o', rss, command, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  const wall_s = (performance.now() - start) / 1000;
  return { wall_s, peak_rss_mb: Number(readFileSync(rss, 'utf8').trim().split('\n').at(-1)) / 1024, stdout };
}

interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Defects (mask components) overlapped by a region, and regions that overlap no defect. */
async function coverage(predictions: { file: string; verdict: string; regions: Region[] }[]) {
  let defects = 0;
  let found = 0;
  let regions = 0;
  let stray = 0;
  const boxes: number[] = [];
  for (const p of predictions) {
    const type = basename(resolve(p.file, '..'));
    if (type === 'good') continue;
    const maskPath = join(data, 'ground_truth', type, basename(p.file).replace(/\.[^.]+$/, '_mask.png'));
    const { data: px, info } = await sharp(maskPath).greyscale().raw().toBuffer({ resolveWithObject: true });
    const mask = Uint8Array.from(px, (v) => (v ? 1 : 0));
    const { labels, count } = labelComponents(mask, info.width, info.height);
    const hit = new Uint8Array(count + 1);
    for (const r of p.regions) {
      regions++;
      boxes.push(r.width * r.height);
      let any = false;
      for (let y = r.y; y < r.y + r.height; y++)
        for (let x = r.x; x < r.x + r.width; x++) {
          const l = labels[y * info.width + x];
          if (l) {
            hit[l] = 1;
            any = true;
          }
        }
      if (!any) stray++;
    }
    defects += count;
    for (let l = 1; l <= count; l++) found += hit[l];
  }
  boxes.sort((a, b) => a - b);
  return { defects, found, regions, stray, median_box_px: boxes[boxes.length >> 1] ?? 0 };
}

type Outcome = Record<string, unknown>;

async function kensaRun(method: string): Promise<Outcome> {
  const model = join(work, `${method}.kensa`);
  const settings = values[method as 'padim' | 'patchcore']!.split(' ').filter(Boolean);
  console.error(`kensa ${method}: train ${settings.join(' ')}`);
  const trained = timed('node', [
    cli,
    'train',
    '--data',
    data,
    '--method',
    method,
    ...settings,
    '--out',
    model,
  ]);
  console.error(`kensa ${method}: test`);
  const testOut = join(work, `${method}-test`);
  const tested = timed('node', [
    cli,
    'test',
    '--model',
    model,
    '--data',
    data,
    '--out',
    testOut,
    '--no-figures',
  ]);
  const metrics = JSON.parse(readFileSync(join(testOut, 'metrics.json'), 'utf8')) as Record<string, unknown>;
  console.error(`kensa ${method}: predict`);
  const predOut = join(work, `${method}-predict`);
  const images = readdirSync(join(data, 'test')).flatMap((d) =>
    readdirSync(join(data, 'test', d)).map((f) => join(data, 'test', d, f)),
  );
  const predicted = timed('node', [cli, 'predict', '--model', model, '--out', predOut, join(data, 'test')]);
  const predictions = JSON.parse(readFileSync(join(predOut, 'predictions.json'), 'utf8')).predictions;
  const confusion = (metrics.confusion as Record<string, Record<string, number>>).fpr0;
  return {
    settings: settings.join(' '),
    train: { wall_s: trained.wall_s, peak_rss_mb: trained.peak_rss_mb },
    test: { wall_s: tested.wall_s, peak_rss_mb: tested.peak_rss_mb },
    predict: {
      wall_s: predicted.wall_s,
      peak_rss_mb: predicted.peak_rss_mb,
      images: images.length,
      s_per_image: predicted.wall_s / images.length,
    },
    model_mb: statSync(model).size / 1e6,
    image_auroc: metrics.image_auroc,
    pixel_auroc: metrics.pixel_auroc,
    aupro: metrics.aupro,
    fpr0: { fp: confusion.fp, tn: confusion.tn, tp: confusion.tp, fn: confusion.fn },
    coverage: await coverage(predictions),
  };
}

function referenceRun(method: string): Outcome {
  const out = join(work, `reference-${method}.json`);
  const size = values['ref-size']!;
  const args = referenceArgs({
    references: values.references!,
    method,
    data,
    backbone: spec.name,
    pth,
    size,
    out,
  });
  console.error(`reference ${method} at ${size}×${size}`);
  try {
    const run = timed(values.python!, args);
    const r = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
    delete r.scores;
    return { ...r, size, wall_s: run.wall_s, peak_rss_mb: run.peak_rss_mb };
  } catch (error) {
    return {
      size,
      error: String((error as Error).message)
        .split('\n')
        .slice(-3)
        .join(' ')
        .slice(0, 300),
    };
  }
}

const results: Record<string, Outcome> = {};
for (const run of values.runs!.split(',')) {
  const [who, method] = run.split('-');
  results[run] = who === 'kensa' ? await kensaRun(method) : referenceRun(method);
}

const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical cores, Node ${process.version}`;
mkdirSync(join(here, 'out'), { recursive: true });
writeFileSync(join(here, 'out', 'highres.json'), JSON.stringify({ machine, data, results }, null, 2));

const f = (v: unknown, digits = 4) => (typeof v === 'number' ? v.toFixed(digits) : 'n/a');
console.log(`Machine: ${machine}. Data: ${data}.\n`);
console.log(
  '| run | settings | train (s) / peak RSS (MB) | image AUROC | pixel AUROC | AUPRO | false alarms at fpr0 | defects found at fpr0 | predict s/image | predict peak RSS (MB) | model (MB) |',
);
console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const [run, r] of Object.entries(results)) {
  if (r.error) {
    console.log(`| ${run} | ${r.size}² | failed: ${r.error} | | | | | | | | |`);
  } else if (run.startsWith('kensa')) {
    const t = r.train as Record<string, number>;
    const p = r.predict as Record<string, number>;
    const c = r.coverage as Record<string, number>;
    const z = r.fpr0 as Record<string, number>;
    console.log(
      `| ${run} | ${r.settings} | ${f(t.wall_s, 0)} / ${f(t.peak_rss_mb, 0)} | ${f(r.image_auroc)} | ${f(r.pixel_auroc)} | ${f(r.aupro)} | ${z.fp}/${z.fp + z.tn} | ${c.found}/${c.defects} (${((100 * c.found) / c.defects).toFixed(1)} %) | ${f(p.s_per_image, 2)} | ${f(p.peak_rss_mb, 0)} | ${f(r.model_mb, 1)} |`,
    );
  } else {
    const timings = r.timings_s as Record<string, number> | undefined;
    console.log(
      `| ${run} | ${r.size}×${r.size} square | ${f(r.wall_s, 0)} (train + test) / ${f(r.peak_rss_mb, 0)} | ${f(r.image_auroc)} | ${f(r.pixel_auroc)} | | | | ${timings ? JSON.stringify(timings) : ''} | | |`,
    );
  }
}
for (const [run, r] of Object.entries(results))
  if (r.coverage)
    console.log(`${run}: regions ${JSON.stringify(r.coverage)}, test ${JSON.stringify(r.test)}`);
