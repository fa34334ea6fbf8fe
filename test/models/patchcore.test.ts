/** PatchCore's pieces against straightforward float64 computations: embedding, nearest neighbours, coreset, score. */
import { describe, expect, it } from 'vitest';
import type { FeatureMap } from '../../src/backbone/backbone.js';
import {
  coresetIndices,
  kCenterCover,
  kCenterGreedy,
  project,
  sparseProjection,
} from '../../src/models/patchcore/coreset.js';
import { EmbedGraph, NearestGraph, NearestSearch } from '../../src/models/patchcore/graphs.js';
import { PatchcoreFitter, PatchcoreScorer, reweight } from '../../src/models/patchcore/model.js';
import { upsampleBilinear } from '../../src/postprocess/anomaly-map.js';
import { mulberry32 } from '../../src/util/random.js';
import { relativeMaxError } from '../helpers.js';

const C: [number, number, number] = [3, 4, 5];

function randomMaps(
  rand: () => number,
  B: number,
  h: number,
  w: number,
): [FeatureMap, FeatureMap, FeatureMap] {
  return C.map((c, i) => {
    const dims: [number, number, number, number] = [B, c, (h * 2) >> i, (w * 2) >> i];
    return { dims, data: Float32Array.from({ length: B * c * dims[2] * dims[3] }, () => rand() * 2 + i) };
  }) as [FeatureMap, FeatureMap, FeatureMap];
}

/** AvgPool2d(3, 1, 1) with zero padding counted (divide by 9). */
function avgPool(src: Float32Array, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy >= 0 && yy < h && xx >= 0 && xx < w) s += src[yy * w + xx];
        }
      out[y * w + x] = s / 9;
    }
  return out;
}

/** The reference embedding of image b: [h·w, c2 + c3] rows. */
function referenceEmbedding(maps: FeatureMap[], b: number): Float64Array {
  const [, c2, h, w] = maps[1].dims;
  const [, c3, h3, w3] = maps[2].dims;
  const rows = new Float64Array(h * w * (c2 + c3));
  for (let c = 0; c < c2; c++) {
    const plane = avgPool(maps[1].data.subarray((b * c2 + c) * h * w, (b * c2 + c + 1) * h * w), h, w);
    for (let p = 0; p < h * w; p++) rows[p * (c2 + c3) + c] = plane[p];
  }
  for (let c = 0; c < c3; c++) {
    const pooled = avgPool(maps[2].data.subarray((b * c3 + c) * h3 * w3, (b * c3 + c + 1) * h3 * w3), h3, w3);
    const up = upsampleBilinear(pooled, h3, w3, h, w);
    for (let p = 0; p < h * w; p++) rows[p * (c2 + c3) + c2 + c] = up[p];
  }
  return rows;
}

function bruteNearest(q: Float32Array, bank: Float32Array, D: number): { dist: number[]; index: number[] } {
  const dist: number[] = [];
  const index: number[] = [];
  for (let i = 0; i < q.length / D; i++) {
    let best = Infinity;
    let at = -1;
    for (let m = 0; m < bank.length / D; m++) {
      let s = 0;
      for (let c = 0; c < D; c++) s += (q[i * D + c] - bank[m * D + c]) ** 2;
      if (s < best) [best, at] = [s, m];
    }
    dist.push(Math.sqrt(best));
    index.push(at);
  }
  return { dist, index };
}

describe('PatchCore', () => {
  it('embedding: 3×3 average pools, bilinear upsampling of the stride-16 map, concatenation (non-square)', async () => {
    const maps = randomMaps(mulberry32(4), 2, 6, 10);
    const graph = await EmbedGraph.create(C);
    const emb = await graph.run(maps);
    await graph.release();
    const per = 6 * 10 * 9;
    for (const b of [0, 1])
      expect(
        relativeMaxError(emb.subarray(b * per, (b + 1) * per), referenceEmbedding(maps, b)),
      ).toBeLessThan(1e-6);
  });

  it('nearest neighbours are exact: distances and bank rows as a brute-force search', async () => {
    const rand = mulberry32(5);
    const D = 12;
    const bank = Float32Array.from({ length: 300 * D }, () => rand() * 4);
    const q = Float32Array.from({ length: 50 * D }, () => rand() * 4);
    const graph = await NearestGraph.create(bank, D, 1);
    const got = await graph.run(q);
    await graph.release();
    const want = bruteNearest(q, bank, D);
    expect(Array.from(got.index)).toEqual(want.index);
    expect(relativeMaxError(got.dist, want.dist)).toBeLessThan(1e-4);
  });

  it('the lazy greedy coreset picks what the plain farthest-point loop picks', async () => {
    const rand = mulberry32(6);
    const dim = 8;
    const N = 3000;
    const X = Float32Array.from({ length: N * dim }, () => rand() * 10);
    const n = 300;
    const picks = await kCenterGreedy(X, dim, n, 17);
    // anomalib's loop: one pass over all points per pick
    const plain = [17];
    const min = new Float64Array(N).fill(Infinity);
    let last = 17;
    for (let k = 1; k < n; k++) {
      let best = -1;
      for (let i = 0; i < N; i++) {
        let s = 0;
        for (let c = 0; c < dim; c++) s += (X[i * dim + c] - X[last * dim + c]) ** 2;
        min[i] = Math.min(min[i], Math.sqrt(s));
        if (best < 0 || min[i] > min[best]) best = i;
      }
      min[best] = 0;
      plain.push(best);
      last = best;
    }
    expect(Array.from(picks)).toEqual(plain);
  });

  it('a coreset continued from a bank (kensa update): the bank kept, then the farthest new rows, with exact covers', async () => {
    const rand = mulberry32(9);
    const dim = 6;
    const fixed = 200;
    const N = 1700;
    const X = Float32Array.from({ length: N * dim }, () => rand() * 10);
    const n = fixed + 150;
    const { picks, owner, bound } = await kCenterCover(X, dim, n, 0, undefined, fixed);
    expect(Array.from(picks.subarray(0, fixed))).toEqual(Array.from({ length: fixed }, (_, i) => i));
    // the plain farthest-point loop, starting with every bank row picked
    const sq = (i: number, j: number) => {
      let s = 0;
      for (let c = 0; c < dim; c++) s += (X[i * dim + c] - X[j * dim + c]) ** 2;
      return s;
    };
    const min = new Float64Array(N).fill(Infinity);
    for (let i = 0; i < N; i++) for (let b = 0; b < fixed; b++) min[i] = Math.min(min[i], sq(i, b));
    const plain: number[] = [];
    for (let k = fixed; k < n; k++) {
      let best = -1;
      for (let i = 0; i < N; i++) if (best < 0 || min[i] > min[best]) best = i;
      plain.push(best);
      for (let i = 0; i < N; i++) min[i] = Math.min(min[i], sq(i, best));
    }
    expect(Array.from(picks.subarray(fixed))).toEqual(plain);
    // every row's cover: its owner is a pick, and the bound is at least its true distance to the picks
    for (let i = 0; i < N; i += 7) {
      expect(owner[i]).toBeGreaterThanOrEqual(0);
      expect(owner[i]).toBeLessThan(n);
      expect(bound[i]).toBeCloseTo(sq(i, picks[owner[i]]), 2);
      expect(bound[i]).toBeGreaterThanOrEqual(min[i] * (1 - 1e-5) - 1e-4);
    }
  });

  it('the projection is sparse (about 1/√C of the inputs per component) and seeded', async () => {
    const m = sparseProjection(144, 32, mulberry32(1));
    const nonzero = m.reduce((s, v) => s + (v !== 0 ? 1 : 0), 0);
    expect(nonzero / (144 * 32)).toBeGreaterThan(0.05);
    expect(nonzero / (144 * 32)).toBeLessThan(0.12);
    expect(sparseProjection(144, 32, mulberry32(1))).toEqual(m);
    const rows = Float32Array.from({ length: 4 * 144 }, (_, i) => (i % 7) - 3);
    const p = await project(rows, 144, m);
    let s = 0;
    for (let c = 0; c < 144; c++) s += rows[144 + c] * m[c * 32 + 5];
    expect(p[32 + 5]).toBeCloseTo(s, 4);
    const idx = await coresetIndices(rows, 144, 2, 3);
    expect(new Set(idx).size).toBe(2);
  });

  it("image score: anomalib's re-weighting (1 − softmax(d)₀)·s*", () => {
    const d = [2, 3, 5];
    const e = d.map((v) => Math.exp(v));
    expect(reweight(d)).toBeCloseTo(1 - e[0] / (e[0] + e[1] + e[2]), 12);
    expect(reweight([4])).toBe(0);
  });

  it('the pruned search (a bound from the principal axes) finds exactly the nearest rows', async () => {
    const rand = mulberry32(10);
    const D = 96;
    // rows with most of their variance in a few directions, as CNN embeddings have
    const row = () =>
      Float32Array.from({ length: D }, (_, c) => (rand() - 0.5) * (c < 8 ? 10 : c < 32 ? 2 : 0.3));
    const bank = new Float32Array(2000 * D);
    for (let i = 0; i < 2000; i++) bank.set(row(), i * D);
    const q = new Float32Array(300 * D);
    for (let i = 0; i < 300; i++) q.set(row(), i * D);
    const search = await NearestSearch.create(bank, D);
    expect(search).toBeInstanceOf(NearestSearch);
    const got = await search.run(q);
    await search.release();
    const want = bruteNearest(q, bank, D);
    expect(Array.from(got.index)).toEqual(want.index);
    expect(relativeMaxError(got.dist, want.dist)).toBeLessThan(1e-4);
  });

  it('takes only the cells each tile owns', async () => {
    const maps = randomMaps(mulberry32(12), 2, 8, 8);
    const all = new PatchcoreFitter(C, 1, 3, 0);
    const whole = { y0: 0, y1: 8, x0: 0, x1: 8 };
    await all.add(maps, [0, 1], [whole, whole]);
    const full = await all.finish();
    const part = new PatchcoreFitter(C, 1, 3, 0);
    const owned = [
      { y0: 2, y1: 6, x0: 1, x1: 5 },
      { y0: 0, y1: 8, x0: 6, x1: 8 },
    ];
    await part.add(maps, [0, 1], owned);
    const some = await part.finish();
    expect(some.patches).toBe(16 + 16);
    // each kept row is the embedding of its cell, in the whole batch's rows
    const D = full.dim;
    const want: number[][] = [];
    owned.forEach((o, b) => {
      for (let y = o.y0; y < o.y1; y++)
        for (let x = o.x0; x < o.x1; x++)
          want.push(Array.from(full.bank.subarray(((b * 8 + y) * 8 + x) * D, ((b * 8 + y) * 8 + x + 1) * D)));
    });
    const got = Array.from({ length: some.patches }, (_, i) =>
      Array.from(some.bank.subarray(i * D, (i + 1) * D)),
    );
    const key = (r: number[]) => r.map((v) => v.toFixed(5)).join(',');
    expect(got.map(key).sort()).toEqual(want.map(key).sort());
  });

  it('scores the owned cells only, as the whole grid scores them', async () => {
    const fitter = new PatchcoreFitter(C, 0.5, 3, 0);
    const whole = { y0: 0, y1: 8, x0: 0, x1: 8 };
    await fitter.add(randomMaps(mulberry32(21), 2, 8, 8), [0, 1], [whole, whole]);
    const state = await fitter.finish();
    const scorer = await PatchcoreScorer.open(state.bank, state.dim, state.neighbors, C);
    const maps = randomMaps(mulberry32(22), 2, 8, 8);
    const full = await scorer.score(maps);
    const owned = [
      { y0: 1, y1: 7, x0: 2, x1: 8 },
      { y0: 0, y1: 3, x0: 0, x1: 5 },
    ];
    const part = await scorer.score(maps, owned);
    await scorer.release();
    for (let b = 0; b < 2; b++)
      for (let y = 0; y < 8; y++)
        for (let x = 0; x < 8; x++) {
          const p = b * 64 + y * 8 + x;
          const o = owned[b];
          const inside = y >= o.y0 && y < o.y1 && x >= o.x0 && x < o.x1;
          // the same distances (up to float32 rounding of a product of another size)
          if (inside) expect(Math.abs(part.grid[p] - full.grid[p])).toBeLessThan(1e-4 * full.grid[p]);
          else expect(part.grid[p]).toBe(0);
        }
    expect(part.peaks!.raw[0]).toBeLessThanOrEqual(full.peaks!.raw[0]);
  });

  it('a fitted model scores its peak patch: an outlier patch raises the image score', async () => {
    const rand = mulberry32(8);
    const fitter = new PatchcoreFitter(C, 0.25, 3, 0);
    const whole = { y0: 0, y1: 8, x0: 0, x1: 8 };
    for (let i = 0; i < 4; i++)
      await fitter.add(randomMaps(rand, 2, 8, 8), [2 * i, 2 * i + 1], [whole, whole]);
    const state = await fitter.finish();
    expect(state.bank.length / state.dim).toBe(Math.floor(8 * 64 * 0.25));
    const scorer = await PatchcoreScorer.open(state.bank, state.dim, state.neighbors, C);
    const maps = randomMaps(mulberry32(9), 2, 8, 8);
    maps[1].data[(1 * 4 * 8 + 3) * 8 + 5] += 40; // image 1, channel 0 of layer2, cell (3, 5)
    const scores = await scorer.score(maps);
    await scorer.release();
    const [, h, w] = scores.dims;
    const grid = scores.grid;
    let at = 0;
    for (let p = 0; p < h * w; p++) if (grid[h * w + p] > grid[h * w + at]) at = p;
    // the 3×3 average spreads the outlier over its neighbourhood: the peak is one of those cells
    expect(Math.abs(Math.floor(at / w) - 3)).toBeLessThanOrEqual(1);
    expect(Math.abs((at % w) - 5)).toBeLessThanOrEqual(1);
    expect(scores.peaks!.raw[1]).toBe(grid[h * w + at]);
    expect(scores.peaks!.score[1]).toBeGreaterThan(scores.peaks!.score[0]);
    expect(scores.peaks!.score[1]).toBeLessThanOrEqual(scores.peaks!.raw[1]);
  });

  it('one neighbour (--neighbors 1): the image score is the largest patch distance itself', async () => {
    const fit = async (neighbors: number) => {
      const fitter = new PatchcoreFitter(C, 0.25, neighbors, 0);
      const rand = mulberry32(8);
      const whole = { y0: 0, y1: 8, x0: 0, x1: 8 };
      for (let i = 0; i < 4; i++)
        await fitter.add(randomMaps(rand, 2, 8, 8), [2 * i, 2 * i + 1], [whole, whole]);
      const state = await fitter.finish();
      const scorer = await PatchcoreScorer.open(state.bank, state.dim, state.neighbors, C);
      const scores = await scorer.score(randomMaps(mulberry32(9), 2, 8, 8));
      await scorer.release();
      return { state, peaks: scores.peaks! };
    };
    const one = await fit(1);
    const nine = await fit(9);
    expect(one.state.neighbors).toBe(1);
    expect(Array.from(one.state.bank)).toEqual(Array.from(nine.state.bank));
    expect(Array.from(one.peaks.score)).toEqual(Array.from(one.peaks.raw));
    expect(Array.from(nine.peaks.raw)).toEqual(Array.from(one.peaks.raw));
    for (let i = 0; i < 2; i++) expect(nine.peaks.score[i]).toBeLessThan(one.peaks.score[i]);
  });
});
