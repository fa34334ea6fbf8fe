import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { encodeGraph, valueInfo } from '../../src/onnx/graph.js';
import { OnnxSession } from '../../src/onnx/runtime.js';
import { anomalyMap, MapStep, mapStepNodes, padIndex } from '../../src/postprocess/anomaly-map.js';
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

  it.each(['reflect', 'mirror'] as const)(
    'the exported map step (ONNX nodes) gives the band form’s map at every size, %s padding, sides shorter than the kernel too',
    async (padding) => {
      const settings = { sigma: 4, padding };
      const step = mapStepNodes(settings, 'grid', { like: 'image' });
      const session = await OnnxSession.create(
        encodeGraph(
          'map-step',
          step.nodes,
          [valueInfo('grid', [1, 'h', 'w']), valueInfo('image', [1, 3, 'H', 'W'])],
          [valueInfo(step.map, [1, 'H', 'W'])],
          step.initializers,
        ),
      );
      try {
        // a 16-px strip (what a 3136×16 image becomes), one cell, a side of 8, odd sizes, a square
        for (const [h, w, H, W] of [
          [2, 392, 16, 3136],
          [1, 1, 8, 8],
          [1, 3, 8, 24],
          [3, 5, 24, 40],
          [7, 2, 56, 16],
          [28, 28, 224, 224],
        ]) {
          const grid = Float32Array.from({ length: h * w }, (_, i) => 1 + Math.sin(i * 1.7) + (i % 5));
          const expected = new Float32Array(H * W);
          new MapStep(h, w, H, W, settings).apply(grid, expected);
          const { map } = await session.run({
            grid: { data: grid, dims: [1, h, w] },
            image: { data: new Float32Array(3 * H * W), dims: [1, 3, H, W] },
          });
          expect(map.dims, `${h}×${w} → ${H}×${W}`).toEqual([1, H, W]);
          expect(relativeMaxError(map.data, expected), `${h}×${w} → ${H}×${W}`).toBeLessThan(1e-5);
        }
      } finally {
        await session.release();
      }
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
