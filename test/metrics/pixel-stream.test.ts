import { describe, expect, it } from 'vitest';
import { pixelMetrics } from '../../src/metrics/aupro.js';
import { PixelMetricsStream } from '../../src/metrics/pixel-stream.js';
import { mulberry32 } from '../../src/util/random.js';

/** Maps with defect regions that score higher than the surface, some overlapping in score. */
function items(seed: number) {
  const rand = mulberry32(seed);
  const width = 48;
  const height = 40;
  return Array.from({ length: 6 }, (_, k) => {
    const map = new Float32Array(width * height);
    const mask = new Uint8Array(width * height);
    for (let i = 0; i < map.length; i++) map[i] = 1 + rand() * 2;
    if (k % 3 !== 0) {
      // two rectangles of different sizes, each a region
      for (const [x0, y0, w, h] of [
        [5 + k, 4, 6, 3],
        [20, 10 + k, 14, 12],
      ])
        for (let y = y0; y < y0 + h; y++)
          for (let x = x0; x < x0 + w; x++) {
            mask[y * width + x] = 1;
            map[y * width + x] = 2 + rand() * 3;
          }
    }
    return { map, mask, width, height };
  });
}

describe('PixelMetricsStream', () => {
  it('gives the exact pixel AUROC and AUPRO within 1e-4', () => {
    for (const seed of [1, 2, 3]) {
      const list = items(seed);
      const exact = pixelMetrics(list);
      const stream = new PixelMetricsStream(2.5);
      for (const it of list) stream.add(it.map, it.mask, it.width, it.height);
      const got = stream.result();
      expect(exact.pixel_auroc.value).toBeGreaterThan(0.6);
      expect(exact.pixel_auroc.value).toBeLessThan(0.99);
      expect(Math.abs(got.pixel_auroc.value! - exact.pixel_auroc.value!)).toBeLessThan(1e-4);
      expect(Math.abs(got.aupro.value! - exact.aupro.value!)).toBeLessThan(1e-4);
    }
  });

  it('says why when there is nothing to measure', () => {
    const stream = new PixelMetricsStream(1);
    stream.add(new Float32Array([1, 2, 3, 4]), new Uint8Array(4), 2, 2);
    expect(stream.result().pixel_auroc.value).toBeNull();
    expect(stream.result().aupro.reason).toMatch(/no defect regions/);
  });
});
