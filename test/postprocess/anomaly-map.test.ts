import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { anomalyMap } from '../../src/postprocess/anomaly-map.js';
import { upsampleSmoothMatrix } from '../../src/postprocess/smoothing-matrix.js';
import { findRegions, labelComponents } from '../../src/postprocess/regions.js';
import { fixture, relativeMaxError } from '../helpers.js';

const f = JSON.parse(readFileSync(fixture('metrics', 'anomaly_map.json'), 'utf8')) as {
  grid: number;
  size: number;
  sigma: number;
  dist: number[];
  map: number[];
};

describe('anomaly map', () => {
  it('upsampling + smoothing match PyTorch bilinear and scipy gaussian_filter', () => {
    const { map, score } = anomalyMap(Float32Array.from(f.dist), f.grid, f.grid, f.size, f.sigma);
    expect(relativeMaxError(map, f.map)).toBeLessThan(1e-6);
    expect(score).toBeCloseTo(Math.max(...f.map), 5);
  });

  it('the one-matrix form A·D·Aᵀ gives the same map', () => {
    const A = upsampleSmoothMatrix(f.grid, f.size, f.sigma);
    const h = f.grid;
    const S = f.size;
    const out = new Float64Array(S * S);
    for (let i = 0; i < S; i++)
      for (let j = 0; j < S; j++) {
        let s = 0;
        for (let a = 0; a < h; a++)
          for (let b = 0; b < h; b++) s += A[i * h + a] * f.dist[a * h + b] * A[j * h + b];
        out[i * S + j] = s;
      }
    expect(relativeMaxError(out, f.map)).toBeLessThan(1e-6);
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
