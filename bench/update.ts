/**
 * kensa update against training again: a model is trained on 10/11 of a data set's good training images
 * (seeded draw), then the other 1/11 (10 % more images) is added with `update`; the same images are also
 * trained on from scratch. Both models are tested on the data set's test images. Prints per method the
 * seconds of update and of training on the union (the ratio), image and pixel AUROC of both and recall at
 * fpr0 with the false alarms on test/good, as Markdown rows for BENCHMARKS.md. Each method with its
 * defaults (PaDiM with a square resize: one input size).
 *
 *   npx tsx bench/update.ts [--data ../shared/datasets/mtd] [--methods patchcore,padim]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { trainingImages } from '../src/data/dataset.js';
import { mulberry32, shuffledIndices } from '../src/util/random.js';
import { test } from '../src/pipeline/verbs/test.js';
import { train } from '../src/pipeline/verbs/train.js';
import { update } from '../src/pipeline/verbs/update.js';

const { values } = parseArgs({
  options: {
    data: { type: 'string', default: join(import.meta.dirname, '../../shared/datasets/mtd') },
    methods: { type: 'string', default: 'patchcore,padim' },
  },
});
const data = values.data!;
const all = trainingImages(data);
const order = shuffledIndices(all.length, mulberry32(11));
const nNew = Math.round(all.length / 11);
const fresh = new Set(order.slice(0, nNew));
const base = all.filter((_, i) => !fresh.has(i));
const added = all.filter((_, i) => fresh.has(i));
const dir = mkdtempSync(join(tmpdir(), 'kensa-bench-update-'));
console.log(
  `${data}: ${base.length} good images, then ${added.length} more (${((100 * added.length) / base.length).toFixed(1)} %)`,
);

const seconds = async (f: () => Promise<unknown>) => {
  const t0 = performance.now();
  await f();
  return (performance.now() - t0) / 1000;
};
const rows: string[] = [];
for (const method of values.methods!.split(',')) {
  const baseModel = join(dir, `${method}-base.kensa`);
  const updated = join(dir, `${method}-updated.kensa`);
  const union = join(dir, `${method}-union.kensa`);
  // PaDiM needs one input size: the square resize of the MTD rows above (PatchCore: the default, aspect kept)
  const preprocess = method === 'padim' ? ({ mode: 'resize', size: 224 } as const) : undefined;
  const baseS = await seconds(() => train({ data: base, method, preprocess, out: baseModel }));
  const updateS = await seconds(() => update({ model: baseModel, add: added, out: updated }));
  const unionS = await seconds(() => train({ data: all, method, preprocess, out: union }));
  const result = async (model: string, name: string) => {
    const r = await test({ model, data, out: join(dir, `${method}-${name}-test`), figures: false });
    const c = r.metrics.confusion.fpr0;
    return {
      image: r.metrics.image_auroc!,
      pixel: r.metrics.pixel_auroc!,
      recall: `${(100 * (c.recall ?? 0)).toFixed(1)} %, ${c.fp}/${c.fp + c.tn}`,
      fpr0: r.metrics.thresholds.fpr0,
    };
  };
  const u = await result(updated, 'updated');
  const t = await result(union, 'union');
  console.log(
    JSON.stringify({ method, base_s: baseS, update_s: updateS, union_s: unionS, updated: u, union: t }),
  );
  rows.push(
    `| ${method} | ${updateS.toFixed(1)} | ${unionS.toFixed(1)} | ${(unionS / updateS).toFixed(1)}× | ` +
      `${u.image.toFixed(4)} / ${t.image.toFixed(4)} | ${u.pixel.toFixed(4)} / ${t.pixel.toFixed(4)} | ` +
      `${u.recall} / ${t.recall} | ${u.fpr0.toPrecision(4)} / ${t.fpr0.toPrecision(4)} |`,
  );
}
console.log(
  '\n| method | update (s) | train on the union (s) | faster | image AUROC (update / union) | pixel AUROC | at fpr0: recall, false alarms | fpr0 |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(r);
