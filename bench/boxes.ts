/**
 * Boxes measured against the defects: generated camera-like images with dust specks of known size
 * (bench/make-highres.ts's surfaces, smaller), a model trained on the good ones, predict on test/dust, and
 * for every speck (a connected component of its mask, original pixels) the region box that overlaps it
 * most: the ratio of the box's width and height to the speck's. Prints the median ratio and the share
 * within 0.7–1.5 for specks of 10 px and more (a Markdown table for BENCHMARKS.md).
 *
 *   npx tsx bench/boxes.ts [--width 1280 --height 1024] [--method patchcore|padim] [--dust 20]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { makeSurfaceDataset } from '../src/data/synthetic.js';
import { labelComponents } from '../src/postprocess/regions.js';
import { predict } from '../src/pipeline/verbs/predict.js';
import { train } from '../src/pipeline/verbs/train.js';

const { values } = parseArgs({
  options: {
    width: { type: 'string' },
    height: { type: 'string' },
    method: { type: 'string' },
    dust: { type: 'string' },
  },
});
const width = Number(values.width ?? 1280);
const height = Number(values.height ?? 1024);
const method = values.method ?? 'patchcore';
const dir = mkdtempSync(join(tmpdir(), 'kensa-bench-boxes-'));
const data = join(dir, 'data');
await makeSurfaceDataset(data, {
  width,
  height,
  train: 24,
  testGood: 4,
  testDust: Number(values.dust ?? 20),
  testScratch: 0,
  seed: 31,
});
const preprocess =
  method === 'padim'
    ? { mode: 'scale' as const, scale: 0.5, tile: { size: 256, overlap: 64 } }
    : { mode: 'scale' as const, scale: 0.5, tile: { size: 512, overlap: 96 } };
const model = join(dir, 'm.kensa');
await train({ data, method, out: model, preprocess });
const r = await predict({
  model,
  inputs: [join(data, 'test', 'dust')],
  out: join(dir, 'out'),
  overlays: false,
});
interface Row {
  speck: [number, number];
  box?: [number, number];
}
const rows: Row[] = [];
for (const p of r.predictions) {
  const maskPath = p.file
    .replace(`${join('test', 'dust')}`, join('ground_truth', 'dust'))
    .replace(/\.png$/, '_mask.png');
  const { data: m, info } = await sharp(maskPath).greyscale().raw().toBuffer({ resolveWithObject: true });
  const bin = Uint8Array.from(m, (v) => (v > 127 ? 1 : 0));
  const { labels, count } = labelComponents(bin, info.width, info.height);
  for (let l = 1; l <= count; l++) {
    let [x0, y0, x1, y1] = [Infinity, Infinity, -1, -1];
    for (let i = 0; i < labels.length; i++)
      if (labels[i] === l) {
        const x = i % info.width;
        const y = (i / info.width) | 0;
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    const overlap = (g: { x: number; y: number; width: number; height: number }) =>
      Math.max(0, Math.min(x1 + 1, g.x + g.width) - Math.max(x0, g.x)) *
      Math.max(0, Math.min(y1 + 1, g.y + g.height) - Math.max(y0, g.y));
    const best = [...p.regions].sort((a, b) => overlap(b) - overlap(a))[0];
    rows.push({
      speck: [x1 - x0 + 1, y1 - y0 + 1],
      ...(best && overlap(best) > 0 ? { box: [best.width, best.height] as [number, number] } : {}),
    });
  }
}
const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length
    ? s.length % 2
      ? s[(s.length - 1) >> 1]
      : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
    : NaN;
};
const large = rows.filter((r) => Math.max(...r.speck) >= 10);
const found = large.filter((r) => r.box);
const ratios = found.flatMap((r) => [r.box![0] / r.speck[0], r.box![1] / r.speck[1]]);
const within = ratios.filter((q) => q >= 0.7 && q <= 1.5).length;
console.log(rows.map((r) => `${r.speck.join('×')} → ${r.box ? r.box.join('×') : 'no box'}`).join('\n'));
console.log(
  `| ${method}, ${width}×${height}, ${r.predictions.length} dust images | ${large.length} specks of 10 px and more, ${found.length} boxed | ` +
    `median box/speck ${median(ratios).toFixed(2)} (width and height) | ${((100 * within) / Math.max(1, ratios.length)).toFixed(0)} % within 0.7–1.5 |`,
);
