import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { makeSurfaceDataset } from '../../src/data/synthetic.js';
import { labelComponents } from '../../src/postprocess/regions.js';

const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function gray(path: string) {
  const { data, info } = await sharp(path).greyscale().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

describe('makeSurfaceDataset', () => {
  it('writes seeded surfaces with small defects that stand out where the masks say', async () => {
    const root = await mkdtemp(join(tmpdir(), 'kensa-surface-'));
    dirs.push(root);
    const options = { width: 480, height: 400, train: 1, testGood: 1, testDust: 3, testScratch: 1, seed: 4 };
    expect(await makeSurfaceDataset(root, options)).toEqual({
      train_good: 1,
      test_good: 1,
      test_dust: 3,
      test_scratch: 1,
    });
    for (const name of ['000', '001', '002']) {
      const mask = await gray(join(root, 'ground_truth', 'dust', `${name}_mask.png`));
      const img = await gray(join(root, 'test', 'dust', `${name}.png`));
      expect([mask.width, mask.height, img.width, img.height]).toEqual([480, 400, 480, 400]);
      const fg = Uint8Array.from(mask.data, (v) => (v ? 1 : 0));
      const { labels, count } = labelComponents(fg, 480, 400);
      expect(count).toBeGreaterThanOrEqual(1);
      expect(count).toBeLessThanOrEqual(3);
      for (let l = 1; l <= count; l++) {
        let x0 = Infinity,
          x1 = -1,
          y0 = Infinity,
          y1 = -1,
          inside = 0,
          n = 0;
        for (let i = 0; i < labels.length; i++)
          if (labels[i] === l) {
            const x = i % 480,
              y = (i - x) / 480;
            [x0, x1, y0, y1] = [Math.min(x0, x), Math.max(x1, x), Math.min(y0, y), Math.max(y1, y)];
            inside += img.data[i];
            n++;
          }
        // a speck of 6–24 × 14–70 px, either way (two specks may touch)
        const [short, long] = [x1 - x0 + 1, y1 - y0 + 1].sort((a, b) => a - b);
        expect(short).toBeGreaterThanOrEqual(6);
        expect(long).toBeGreaterThanOrEqual(14);
        // its mean gray level differs from the ring of surface just outside its box
        let ring = 0,
          m = 0;
        for (let y = Math.max(0, y0 - 4); y <= Math.min(399, y1 + 4); y++)
          for (let x = Math.max(0, x0 - 4); x <= Math.min(479, x1 + 4); x++)
            if (!fg[y * 480 + x]) {
              ring += img.data[y * 480 + x];
              m++;
            }
        expect(Math.abs(inside / n - ring / m)).toBeGreaterThan(12);
      }
    }
    // seeded: the same seed writes the same pixels
    const again = await mkdtemp(join(tmpdir(), 'kensa-surface-'));
    dirs.push(again);
    await makeSurfaceDataset(again, options);
    const a = await gray(join(root, 'test', 'scratch', '000.png'));
    const b = await gray(join(again, 'test', 'scratch', '000.png'));
    expect(Buffer.compare(a.data, b.data)).toBe(0);
  });
});
