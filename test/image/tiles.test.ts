import { describe, expect, it } from 'vitest';
import { inputRects, tileCount } from '../../src/image/tiles.js';

describe('tiles', () => {
  const cases: [number, number, number, number][] = [
    [1936, 1600, 256, 96],
    [512, 512, 256, 0],
    [400, 272, 256, 64],
    [256, 256, 256, 96],
    [1040, 320, 320, 112],
  ];
  it.each(cases)('cover a %i×%i image once, tile %i, overlap %i', (width, height, size, overlap) => {
    const rects = inputRects(width, height, { size, overlap });
    expect(rects.length).toBe(tileCount(width, height, { size, overlap }));
    const owners = new Uint8Array(width * height);
    for (const r of rects) {
      expect(r.x % 16).toBe(0);
      expect(r.y % 16).toBe(0);
      expect(r.x + r.width).toBeLessThanOrEqual(width);
      expect(r.y + r.height).toBeLessThanOrEqual(height);
      for (const v of [r.owned.x0, r.owned.x1, r.owned.y0, r.owned.y1]) expect(v % 16).toBe(0);
      for (let y = r.y + r.owned.y0; y < r.y + r.owned.y1; y++)
        for (let x = r.x + r.owned.x0; x < r.x + r.owned.x1; x++) owners[y * width + x]++;
    }
    // every pixel belongs to exactly one tile
    expect(owners.every((n) => n === 1)).toBe(true);
    // neighbours overlap by at least the requested amount
    const xs = [...new Set(rects.map((r) => r.x))].sort((a, b) => a - b);
    for (let i = 1; i < xs.length; i++) expect(xs[i - 1] + size - xs[i]).toBeGreaterThanOrEqual(overlap);
  });

  it('keeps tile borders away from the owned part inside the image', () => {
    const rects = inputRects(1936, 1600, { size: 256, overlap: 96 });
    for (const r of rects) {
      if (r.x > 0) expect(r.owned.x0).toBeGreaterThanOrEqual(32);
      if (r.x + r.width < 1936) expect(r.width - r.owned.x1).toBeGreaterThanOrEqual(32);
    }
  });

  it('refuses a tile larger than the image', () => {
    expect(() => inputRects(200, 300, { size: 256, overlap: 32 })).toThrow(/smaller than the 256×256 tile/);
  });
});
