/** Real industrial images (../shared/datasets/mtd, Magnetic Tile Defects): skipped, with a message, when absent. */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDataset } from '../../src/data/dataset.js';
import { test as evaluate } from '../../src/pipeline/evaluate.js';
import { train } from '../../src/pipeline/train.js';

const MTD = resolve(new URL('.', import.meta.url).pathname, '../../../shared/datasets/mtd');
const present = existsSync(join(MTD, 'train', 'good'));
if (!present) console.warn(`skipping the Magnetic Tile Defects test: ${MTD} is absent`);

describe.skipIf(!present)('Magnetic Tile Defects (real images)', () => {
  it.each([
    ['padim', 200, { mode: 'resize', size: 224 }],
    ['patchcore', 400, { mode: 'fit', size: 224 }],
  ] as const)(
    'a %s model trained on %i good tiles separates good from defective test tiles',
    async (method, n, preprocess) => {
      const ds = openDataset(MTD);
      const stride = (items: typeof ds.test, n: number) =>
        items.filter((_, i) => i % Math.ceil(items.length / n) === 0);
      const testItems = [
        ...stride(
          ds.test.filter((t) => t.label === 0),
          40,
        ),
        ...stride(
          ds.test.filter((t) => t.label === 1),
          60,
        ),
      ];
      const { model } = await train({
        data: ds.train.slice(0, n),
        seed: 1,
        method,
        preprocess,
        coreset: method === 'patchcore' ? 0.01 : undefined,
      });
      const out = mkdtempSync(join(tmpdir(), 'kensa-mtd-'));
      const { metrics } = await evaluate({ model, data: testItems, out, figures: false });
      console.log(
        `MTD subset, ${method}: image AUROC ${metrics.image_auroc}, pixel AUROC ${metrics.pixel_auroc}, fpr at fpr0 ${metrics.confusion.fpr0.fpr}`,
      );
      // far above chance (0.5); the accuracy claims themselves come from bench/padim.ts on the full set
      expect(metrics.image_auroc).toBeGreaterThan(0.75);
      expect(metrics.pixel_auroc).toBeGreaterThan(0.6);
      expect(metrics.counts.images).toBe(testItems.length);
    },
  );
});
