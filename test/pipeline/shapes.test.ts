/**
 * Images of several shapes (aspect ratio kept) share backbone batches with images of their own shape:
 * the batches come out of the images' order, and nothing may show it — every image's map and score equal
 * its score alone, the results keep the images' order (with unreadable images left out in place), and a
 * PatchCore model fitted from batches in another order is the same model.
 */
import { mkdtempSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import type { FeatureMap } from '../../src/backbone/backbone.js';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { inImageOrder, PatchcoreFitter } from '../../src/models/patchcore/model.js';
import { loadModel } from '../../src/pipeline/contracts/model-file.js';
import { Inspector, inputBatches } from '../../src/pipeline/engine/inspector.js';
import { train } from '../../src/pipeline/verbs/train.js';
import { mulberry32 } from '../../src/util/random.js';

const dir = mkdtempSync(join(tmpdir(), 'kensa-shapes-'));
const data = join(dir, 'data');
/** Crops of the synthetic images in three shapes, listed so that no two neighbours share a shape. */
const SHAPES = [
  [96, 96],
  [96, 48],
  [48, 96],
] as const;
let mixed: { path: string }[] = [];

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 96, train: 12, testGood: 6, testPerDefect: 3, seed: 5 });
  for (const split of ['train/good', 'test/good', 'test/dust']) {
    const from = join(data, split);
    const to = join(dir, 'mixed', split);
    mkdirSync(to, { recursive: true });
    for (const [i, f] of readdirSync(from).sort().entries()) {
      const [w, h] = SHAPES[i % SHAPES.length];
      await sharp(join(from, f)).extract({ left: 0, top: 0, width: w, height: h }).toFile(join(to, f));
    }
  }
  mixed = ['test/good', 'test/dust'].flatMap((s) =>
    readdirSync(join(dir, 'mixed', s))
      .sort()
      .map((f) => ({ path: join(dir, 'mixed', s, f) })),
  );
}, 60_000);

describe('images of several shapes', () => {
  it('go through the backbone in batches of one shape, out of the images’ order', async () => {
    const { model } = await train({
      data: join(dir, 'mixed'),
      method: 'patchcore',
      preprocess: { mode: 'fit', size: 64 },
      out: join(dir, 'model.kensa'),
    });
    const inspector = await Inspector.open(model);
    try {
      const order: number[][] = [];
      for await (const b of inputBatches(inspector.backbone, mixed, model.meta.preprocess))
        order.push(b.inputs.map((i) => i.image.index));
      // every batch holds one shape, and at least one holds more than one image
      expect(order.some((b) => b.length > 1)).toBe(true);
      expect(order.flat().sort((a, b) => a - b)).toEqual(mixed.map((_, i) => i));
      expect(order.flat()).not.toEqual(mixed.map((_, i) => i));
    } finally {
      await inspector.dispose();
    }
  }, 120_000);

  it('score every image as it scores alone, and keep the images’ order (unreadable ones left out in place)', async () => {
    const model = await loadModel(join(dir, 'model.kensa'));
    const broken = join(dir, 'broken.png');
    writeFileSync(broken, 'not an image');
    const items = [...mixed.slice(0, 4), { path: broken }, ...mixed.slice(4)];
    const inspector = await Inspector.open(model);
    try {
      const errors: string[] = [];
      const together: { path: string; score: number; map: Float32Array }[] = [];
      for await (const r of inspector.score(items, { onError: (item) => errors.push(item.path) }))
        together.push({ path: r.item.path, score: r.score, map: r.map });
      expect(errors).toEqual([broken]);
      expect(together.map((r) => r.path)).toEqual(mixed.map((m) => m.path));
      for (const r of together) {
        const alone = [];
        for await (const a of inspector.score([{ path: r.path }])) alone.push(a);
        expect(Math.abs(alone[0].score - r.score)).toBeLessThanOrEqual(1e-5 * Math.abs(r.score));
        let err = 0;
        let scale = 0;
        for (let i = 0; i < r.map.length; i++) {
          err = Math.max(err, Math.abs(alone[0].map[i] - r.map[i]));
          scale = Math.max(scale, Math.abs(r.map[i]));
        }
        expect(err).toBeLessThanOrEqual(1e-5 * scale);
      }
    } finally {
      await inspector.dispose();
    }
  }, 120_000);
});

const C: [number, number, number] = [3, 4, 5];

function maps(rand: () => number, B: number, h: number, w: number): [FeatureMap, FeatureMap, FeatureMap] {
  return C.map((c, i) => {
    const dims: [number, number, number, number] = [B, c, (h * 2) >> i, (w * 2) >> i];
    return { dims, data: Float32Array.from({ length: B * c * dims[2] * dims[3] }, () => rand() * 2 + i) };
  }) as [FeatureMap, FeatureMap, FeatureMap];
}

describe('PatchCore fitted from batches out of the images’ order', () => {
  it('is the model fitted in order: the same bank, row for row', async () => {
    const rand = mulberry32(3);
    // six images in two shapes; in order they come 0..5, bucketed as (0, 2, 4) then (1, 3, 5)
    const batches = [0, 1, 2, 3, 4, 5].map((i) => ({ i, maps: maps(rand, 1, i % 2 ? 4 : 6, i % 2 ? 6 : 4) }));
    const fit = async (order: number[]) => {
      const fitter = new PatchcoreFitter(C, 0.3, 3, 0);
      for (const i of order) {
        const [, , h, w] = batches[i].maps[1].dims;
        await fitter.add(batches[i].maps, [i], [{ y0: 0, y1: h, x0: 0, x1: w }]);
      }
      return fitter.finish();
    };
    const inOrder = await fit([0, 1, 2, 3, 4, 5]);
    const bucketed = await fit([0, 2, 4, 1, 3, 5]);
    expect(bucketed.patches).toBe(inOrder.patches);
    expect(Array.from(bucketed.bank)).toEqual(Array.from(inOrder.bank));
  });

  it('puts rows into their images’ order in place, stably, leaving the rows before `from` alone', () => {
    const images = [-1, -1, 2, 0, 2, 1, 0, 1, 2];
    const rows = Float32Array.from({ length: images.length * 2 }, (_, k) => k);
    const other = Float32Array.from({ length: images.length * 3 }, (_, k) => -k);
    const want = [0, 1, 3, 6, 5, 7, 2, 4, 8]; // rows 0, 1 fixed, then by image (stable)
    inImageOrder(images, 2, [rows, other]);
    expect(images).toEqual([-1, -1, 0, 0, 1, 1, 2, 2, 2]);
    expect(Array.from(rows)).toEqual(want.flatMap((r) => [2 * r, 2 * r + 1]));
    expect(Array.from(other)).toEqual(want.flatMap((r) => [-3 * r, -3 * r - 1, -3 * r - 2]));
  });
});
