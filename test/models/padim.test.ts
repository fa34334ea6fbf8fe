/** The fitted statistics and the scoring graph against straightforward float64 computations. */
import { describe, expect, it } from 'vitest';
import type { FeatureMap } from '../../src/backbone/backbone.js';
import { chooseChannels, mulberry32 } from '../../src/models/padim/embedding.js';
import { ScoreGraph } from '../../src/models/padim/graphs.js';
import { EPSILON, GaussianFitter } from '../../src/models/padim/model.js';
import { anomalyMap } from '../../src/postprocess/anomaly-map.js';
import { relativeMaxError } from '../helpers.js';

const C: [number, number, number] = [3, 4, 5];
const H = 8;

function randomMaps(rand: () => number, B: number): [FeatureMap, FeatureMap, FeatureMap] {
  return C.map((c, i) => {
    const h = H >> i;
    const dims: [number, number, number, number] = [B, c, h, h];
    return { dims, data: Float32Array.from({ length: B * c * h * h }, () => 3 + rand() * 2 + i) };
  }) as [FeatureMap, FeatureMap, FeatureMap];
}

/** The embedding vector of image b at (y, x): concatenated channels, coarser maps repeated. */
function embedding(maps: FeatureMap[], b: number, y: number, x: number, index: Int32Array): number[] {
  const all: number[] = [];
  maps.forEach((m, i) => {
    const [, c, h, w] = m.dims;
    for (let ch = 0; ch < c; ch++) all.push(m.data[((b * c + ch) * h + (y >> i)) * w + (x >> i)]);
  });
  return Array.from(index, (j) => all[j]);
}

describe('PaDiM statistics', () => {
  it('streaming fit = per-position mean and (n−1) covariance + εI, precision its inverse', async () => {
    const rand = mulberry32(1);
    const index = chooseChannels(12, 7, 3);
    const layout = { channels: C, index, height: H, width: H };
    const batches = [randomMaps(rand, 5), randomMaps(rand, 3), randomMaps(rand, 6)];
    const fitter = new GaussianFitter(layout);
    for (const m of batches) await fitter.add(m);
    const stats = await fitter.finish();
    expect(stats.count).toBe(14);
    const d = index.length;
    for (const [y, x] of [
      [0, 0],
      [3, 5],
      [7, 7],
    ]) {
      const p = y * H + x;
      const vs = batches.flatMap((m) =>
        Array.from({ length: m[0].dims[0] }, (_, b) => embedding(m, b, y, x, index)),
      );
      const mean = Array.from({ length: d }, (_, j) => vs.reduce((s, v) => s + v[j], 0) / vs.length);
      mean.forEach((m, j) => expect(stats.mean[p * d + j]).toBeCloseTo(m, 4));
      const cov = Array.from({ length: d }, (_, i) =>
        Array.from(
          { length: d },
          (_, j) =>
            vs.reduce((s, v) => s + (v[i] - mean[i]) * (v[j] - mean[j]), 0) / (vs.length - 1) +
            (i === j ? EPSILON : 0),
        ),
      );
      // precision · covariance = I
      for (let i = 0; i < d; i++)
        for (let j = 0; j < d; j++) {
          let s = 0;
          for (let k = 0; k < d; k++) s += stats.precision[p * d * d + i * d + k] * cov[k][j];
          expect(s).toBeCloseTo(i === j ? 1 : 0, 3);
        }
    }
  });

  it('the score graph gives Mahalanobis distances, and an image scores the same alone or in a batch', async () => {
    const rand = mulberry32(2);
    const index = chooseChannels(12, 12, 0);
    const layout = { channels: C, index, height: H, width: H };
    const fitter = new GaussianFitter(layout);
    await fitter.add(randomMaps(rand, 20));
    const stats = await fitter.finish();
    const S = 32;
    const graph = await ScoreGraph.create(layout, stats.mean, stats.precision, S, 4);
    const test = randomMaps(rand, 3);
    const { maps, scores } = await graph.run(test);
    // every distance by hand, then upsampling + smoothing step by step (anomalyMap, checked against scipy)
    const d = index.length;
    const dist = new Float32Array(H * H);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < H; x++) {
        const p = y * H + x;
        const diff = embedding(test, 1, y, x, index).map((v, j) => v - stats.mean[p * d + j]);
        let m2 = 0;
        for (let i = 0; i < d; i++)
          for (let j = 0; j < d; j++) m2 += diff[i] * stats.precision[p * d * d + i * d + j] * diff[j];
        dist[p] = Math.sqrt(m2);
      }
    const expected = anomalyMap(dist, H, H, S, 4);
    expect(relativeMaxError(maps[1], expected.map)).toBeLessThan(1e-4);
    expect(scores[1]).toBeCloseTo(expected.score, 3);
    // the image alone
    const alone = test.map((m) => {
      const [, c, h, w] = m.dims;
      return { dims: [1, c, h, w] as FeatureMap['dims'], data: m.data.slice(c * h * w, 2 * c * h * w) };
    }) as [FeatureMap, FeatureMap, FeatureMap];
    const single = await graph.run(alone);
    expect(Math.abs(single.scores[0] - scores[1]) / scores[1]).toBeLessThan(1e-5);
    await graph.release();
  });
});
