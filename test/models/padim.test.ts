/** The fitted statistics and the scoring graph against straightforward float64 computations. */
import { describe, expect, it } from 'vitest';
import type { FeatureMap } from '../../src/backbone/backbone.js';
import { chooseChannels, type EmbeddingLayout } from '../../src/models/padim/embedding.js';
import { packUpper, unpackUpper } from '../../src/models/padim/method.js';
import { EPSILON, GaussianFitter, LeaveOneOutScorer, PadimScorer } from '../../src/models/padim/model.js';
import { mulberry32 } from '../../src/util/random.js';
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

/** Image i's patch scores under a model fitted on all the other images. */
async function scoredWithout(
  layout: EmbeddingLayout,
  images: [FeatureMap, FeatureMap, FeatureMap][],
  i: number,
): Promise<Float32Array> {
  const without = new GaussianFitter(layout);
  for (const [j, m] of images.entries()) if (j !== i) await without.add(m, [j]);
  const stats = await without.finish();
  const direct = await PadimScorer.open(layout, stats.mean, stats.precision);
  const grid = (await direct.score(images[i])).grid;
  await direct.release();
  return grid;
}

/** Single-image maps as one batch. */
function stack(images: [FeatureMap, FeatureMap, FeatureMap][]): [FeatureMap, FeatureMap, FeatureMap] {
  return images[0].map((first, k) => {
    const data = new Float32Array(images.length * first.data.length);
    images.forEach((m, i) => data.set(m[k].data, i * first.data.length));
    const [, c, h, w] = first.dims;
    return { dims: [images.length, c, h, w], data };
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

  it('leave-one-out in closed form: each training image scored as by a model fitted on all the others', async () => {
    const rand = mulberry32(7);
    const index = chooseChannels(12, 9, 1);
    const layout = { channels: C, index, height: H, width: H };
    // few images for the channels, and a spread far above ε: where held-out distances are inflated most,
    // and where 1 − c·q is tiny (float32 would lose it)
    const images = Array.from({ length: 7 }, () => {
      const m = randomMaps(rand, 1);
      m.forEach((f) => f.data.forEach((v, i) => (f.data[i] = v * 10)));
      return m;
    });
    const fitter = new GaussianFitter(layout);
    for (const [i, m] of images.entries()) await fitter.add(m, [i]);
    const loo = (await fitter.leaveOneOut()) as LeaveOneOutScorer;
    for (const i of [0, 3, 6]) {
      const expected = await scoredWithout(layout, images, i);
      const closed = (await loo.score(images[i])).grid;
      expect(relativeMaxError(closed, expected)).toBeLessThan(1e-3);
    }
    // there (d/n = 9/7), float32 would lose 1 − c·q: the model computes in float64 alone
    expect(loo.float32).toBe(false);
    expect(loo.rescored).toBe(0);
    await loo.release();
    // with more images than channels and a spread near ε (where A = S/(n − 2) + εI and the final
    // S/(n − 1) + εI differ most) the same; and the leave-one-out model leaves the final statistics as a
    // fit without it gives them
    const many = Array.from({ length: 80 }, () => {
      const m = randomMaps(rand, 1);
      m.forEach((f) => f.data.forEach((v, i) => (f.data[i] = v * 0.2)));
      return m;
    });
    const both = new GaussianFitter(layout);
    const alone = new GaussianFitter(layout);
    for (const [i, m] of many.entries()) {
      await both.add(m, [i]);
      await alone.add(m, [i]);
    }
    const loo80 = (await both.leaveOneOut()) as LeaveOneOutScorer;
    for (const i of [0, 41, 79]) {
      const expected = await scoredWithout(layout, many, i);
      expect(relativeMaxError((await loo80.score(many[i])).grid, expected)).toBeLessThan(1e-4);
    }
    // n ≫ d: float32 throughout
    expect(loo80.float32).toBe(true);
    expect(loo80.rescored).toBe(0);
    await loo80.release();
    // one image far from the others (c·q near 1: float64) among many that are not (float32): each is
    // scored as a model without it scores it, and in one batch as alone
    const odd = randomMaps(rand, 1);
    odd.forEach((f) => f.data.forEach((v, i) => (f.data[i] = v * 3)));
    const mixed = [...many.slice(0, 40), odd];
    const mixedFitter = new GaussianFitter(layout);
    for (const [i, m] of mixed.entries()) await mixedFitter.add(m, [i]);
    const looMixed = (await mixedFitter.leaveOneOut()) as LeaveOneOutScorer;
    const picked = [0, 40, 1];
    const batch = (await looMixed.score(stack(picked.map((i) => mixed[i])))).grid;
    expect(looMixed.float32).toBe(true);
    expect(looMixed.rescored).toBe(1);
    const cells = H * H;
    for (const [k, i] of picked.entries()) {
      const expected = await scoredWithout(layout, mixed, i);
      const alone = (await looMixed.score(mixed[i])).grid;
      expect(relativeMaxError(alone, expected)).toBeLessThan(1e-3);
      expect(relativeMaxError(batch.subarray(k * cells, (k + 1) * cells), alone)).toBeLessThan(1e-5);
    }
    await looMixed.release();
    const [viaLoo, direct80] = [await both.finish(), await alone.finish()];
    expect(relativeMaxError(viaLoo.precision, direct80.precision)).toBeLessThan(1e-6);
    expect(Array.from(viaLoo.mean)).toEqual(Array.from(direct80.mean));
    // an image that came as several samples (tiles) has no closed form: the fitter says so
    const tiled = new GaussianFitter(layout);
    await tiled.add(randomMaps(rand, 2), [0, 0]);
    await tiled.add(randomMaps(rand, 2), [1, 1]);
    expect(await tiled.leaveOneOut()).toBeUndefined();
  });

  it('the scorer gives Mahalanobis distances, and an image scores the same alone or in a batch', async () => {
    const rand = mulberry32(2);
    const index = chooseChannels(12, 12, 0);
    const layout = { channels: C, index, height: H, width: H };
    const fitter = new GaussianFitter(layout);
    await fitter.add(randomMaps(rand, 20));
    const stats = await fitter.finish();
    const scorer = await PadimScorer.open(layout, stats.mean, stats.precision);
    const test = randomMaps(rand, 3);
    const { grid, dims } = await scorer.score(test);
    expect(dims).toEqual([3, H, H]);
    // every distance by hand
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
    expect(relativeMaxError(grid!.subarray(H * H, 2 * H * H), dist)).toBeLessThan(1e-4);
    // the image alone
    const alone = test.map((m) => {
      const [, c, h, w] = m.dims;
      return { dims: [1, c, h, w] as FeatureMap['dims'], data: m.data.slice(c * h * w, 2 * c * h * w) };
    }) as [FeatureMap, FeatureMap, FeatureMap];
    const single = await scorer.score(alone);
    expect(relativeMaxError(single.grid!, grid!.subarray(H * H, 2 * H * H))).toBeLessThan(1e-5);
    await scorer.release();
  });

  it('a fold left out of the fit: the same statistics as fitting without it', async () => {
    const rand = mulberry32(3);
    const index = chooseChannels(12, 9, 1);
    const layout = { channels: C, index, height: H, width: H };
    const batches = [randomMaps(rand, 5), randomMaps(rand, 4), randomMaps(rand, 6)];
    const all = new GaussianFitter(layout);
    for (const m of batches) await all.add(m);
    // the fold: the second batch
    const fold = {
      images: new Set([5, 6, 7, 8]),
      features: async function* () {
        yield { features: batches[1], images: [5, 6, 7, 8] };
      },
    };
    const without = await all.without(fold);
    const direct = new GaussianFitter(layout);
    await direct.add(batches[0]);
    await direct.add(batches[2]);
    const stats = await direct.finish();
    const reference = await PadimScorer.open(layout, stats.mean, stats.precision);
    const test = randomMaps(rand, 2);
    const a = await without.score(test);
    const b = await reference.score(test);
    expect(relativeMaxError(a.grid!, b.grid!)).toBeLessThan(1e-3);
    await without.release();
    await reference.release();
    await all.release();
  });

  it('the precision matrices are stored once (upper triangles) and come back whole', () => {
    const rand = mulberry32(4);
    const P = 3;
    const d = 5;
    const full = new Float32Array(P * d * d);
    for (let p = 0; p < P; p++)
      for (let i = 0; i < d; i++)
        for (let j = i; j < d; j++) full[p * d * d + i * d + j] = full[p * d * d + j * d + i] = rand();
    const packed = packUpper(full, P, d);
    expect(packed.length).toBe((P * d * (d + 1)) / 2);
    expect(unpackUpper(packed, P, d)).toEqual(full);
  });
});
