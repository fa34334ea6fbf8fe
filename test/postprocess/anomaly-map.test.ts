import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { anomalyMap, MapStep, padIndex } from '../../src/postprocess/anomaly-map.js';
import { findRegions, labelComponents } from '../../src/postprocess/regions.js';
import { fixture, relativeMaxError } from '../helpers.js';

const f = JSON.parse(readFileSync(fixture('metrics', 'anomaly_map.json'), 'utf8')) as {
  grid: number;
  size: number;
  sigma: number;
  dist: number[];
  map: number[];
};
const rect = JSON.parse(readFileSync(fixture('metrics', 'anomaly_map_rect.json'), 'utf8')) as {
  grid: [number, number];
  size: [number, number];
  sigma: number;
  dist: number[];
  reflect: number[];
  mirror: number[];
};

describe('anomaly map', () => {
  it('upsampling + smoothing match PyTorch bilinear and scipy gaussian_filter', () => {
    const { map, score } = anomalyMap(Float32Array.from(f.dist), f.grid, f.grid, f.size, f.size, {
      sigma: f.sigma,
      padding: 'reflect',
    });
    expect(relativeMaxError(map, f.map)).toBeLessThan(1e-6);
    expect(score).toBeCloseTo(Math.max(...f.map), 5);
  });

  it('the band form A_rows·D·A_colsᵀ gives the same map', () => {
    const step = new MapStep(f.grid, f.grid, f.size, f.size, { sigma: f.sigma, padding: 'reflect' });
    const out = new Float32Array(f.size * f.size);
    const max = step.apply(Float32Array.from(f.dist), out);
    expect(relativeMaxError(out, f.map)).toBeLessThan(1e-6);
    expect(max).toBeCloseTo(Math.max(...f.map), 5);
  });

  it.each(['reflect', 'mirror'] as const)(
    'a grid that is not square, %s padding: step by step and band form match scipy',
    (padding) => {
      const [h, w] = rect.grid;
      const [H, W] = rect.size;
      const dist = Float32Array.from(rect.dist);
      const { map } = anomalyMap(dist, h, w, H, W, { sigma: rect.sigma, padding });
      expect(relativeMaxError(map, rect[padding])).toBeLessThan(1e-6);
      const out = new Float32Array(H * W);
      // the grid as part of a larger buffer (an offset), as the inspector passes it
      const buffer = new Float32Array(dist.length + 7);
      buffer.set(dist, 7);
      new MapStep(h, w, H, W, { sigma: rect.sigma, padding }).apply(buffer, out, 7);
      expect(relativeMaxError(out, rect[padding])).toBeLessThan(1e-6);
    },
  );

  it('padding modes: scipy reflect (d c b a | a b c d) and mirror (d c b | a b c d)', () => {
    expect([-3, -2, -1, 0, 3, 4, 5].map((i) => padIndex(i, 4, 'reflect'))).toEqual([2, 1, 0, 0, 3, 3, 2]);
    expect([-3, -2, -1, 0, 3, 4, 5].map((i) => padIndex(i, 4, 'mirror'))).toEqual([3, 2, 1, 0, 3, 2, 1]);
    expect(padIndex(5, 1, 'mirror')).toBe(0);
  });
});

describe('regions', () => {
  it('labels 8-connected components and boxes each with its area and peak', () => {
    // two blobs: a diagonal pair (8-connected) and a single pixel
    const w = 6;
    const map = new Float32Array(36);
    map[0] = 5;
    map[7] = 4;
    map[35] = 9;
    const { regions, mask } = findRegions(map, w, 6, 1);
    expect(labelComponents(mask, w, 6).count).toBe(2);
    expect(regions).toEqual([
      { x: 5, y: 5, width: 1, height: 1, area: 1, peak: 9 },
      { x: 0, y: 0, width: 2, height: 2, area: 2, peak: 5 },
    ]);
  });
});
