/**
 * kensa watch over many files: memory must stay flat. Drops N images (copies of a generated data set's
 * test images, each a new file) into a folder in waves while one watch inspects them, and samples the
 * process's resident memory every 250 images. Prints the samples and the growth from the first quarter to
 * the last (a Markdown line for BENCHMARKS.md).
 *
 *   npx tsx bench/watch.ts [--images 3000] [--wave 200]
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { makeSyntheticDataset } from '../src/data/synthetic.js';
import { train } from '../src/pipeline/verbs/train.js';
import { watch } from '../src/pipeline/verbs/watch.js';

const { values } = parseArgs({ options: { images: { type: 'string' }, wave: { type: 'string' } } });
const N = Number(values.images ?? 3000);
const WAVE = Number(values.wave ?? 200);
const dir = mkdtempSync(join(tmpdir(), 'kensa-bench-watch-'));
const data = join(dir, 'data');
await makeSyntheticDataset(data, { size: 64, train: 10, testGood: 10, testPerDefect: 5, seed: 3 });
const model = join(dir, 'm.kensa');
await train({ data, method: 'padim', out: model, preprocess: { mode: 'fit', size: 64 }, d: 8 });
const sources = ['good', 'dust', 'scratch'].flatMap((t) =>
  readdirSync(join(data, 'test', t)).map((f) => join(data, 'test', t, f)),
);
const drop = join(dir, 'drop');
mkdirSync(drop);
let dropped = 0;
const dropWave = () => {
  for (let i = 0; i < WAVE && dropped < N; i++, dropped++)
    copyFileSync(
      sources[dropped % sources.length],
      join(drop, `shot-${String(dropped).padStart(6, '0')}.png`),
    );
};
dropWave();
const stop = new AbortController();
const samples: { images: number; rss: number }[] = [];
let seen = 0;
const t0 = performance.now();
const done = watch({
  model,
  folder: drop,
  out: join(dir, 'out'),
  overlays: true,
  intervalMs: 100,
  settleMs: 100,
  signal: stop.signal,
  onImage: () => {
    seen++;
    if (seen % 250 === 0) samples.push({ images: seen, rss: process.memoryUsage().rss / 2 ** 20 });
    if (seen % WAVE === 0) dropWave();
    if (seen >= N) stop.abort();
  },
});
const summary = await done;
const seconds = (performance.now() - t0) / 1000;
for (const s of samples) console.log(`${s.images} images: RSS ${s.rss.toFixed(0)} MB`);
const q = Math.max(1, Math.floor(samples.length / 4));
const mean = (a: typeof samples) => a.reduce((t, s) => t + s.rss, 0) / a.length;
const first = mean(samples.slice(0, q));
const last = mean(samples.slice(-q));
console.log(
  `| kensa watch, ${summary.inspected} files (64 px PaDiM, overlays on), ${cpus().length} cores | ${seconds.toFixed(0)} s (${((1000 * seconds) / summary.inspected).toFixed(1)} ms per file) | RSS ${first.toFixed(0)} MB over the first quarter, ${last.toFixed(0)} MB over the last (${(last - first >= 0 ? '+' : '') + (last - first).toFixed(0)} MB) |`,
);
