/**
 * The classifier's parts on known answers: the head learns a separable problem and stops early, the
 * class-balanced loss weighs both classes equally, temperature scaling recovers a known temperature,
 * the calibration error matches a hand count, the class activation map's mean is the image's logit, and
 * augmentation is a seeded, pixel-preserving permutation where it should be.
 */
import { describe, expect, it } from 'vitest';
import { augment, AUGMENTATIONS } from '../../../src/models/classifier/augment.js';
import {
  balancedLoss,
  calibrationError,
  fitTemperature,
  logitOf,
  trainHead,
  DEFAULT_TRAIN,
  type Example,
} from '../../../src/models/classifier/head.js';
import { activation, pooledRows } from '../../../src/models/classifier/method.js';
import { mulberry32 } from '../../../src/util/random.js';

/** Two Gaussian clouds in 8 dimensions, apart along the first axis. */
function clouds(n: number, seed: number, gap = 3): Example[] {
  const r = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  return Array.from({ length: n }, (_, i) => {
    const label = (i % 4 === 0 ? 1 : 0) as 0 | 1;
    const v = Float32Array.from({ length: 8 }, (_, c) => normal() + (c === 0 && label ? gap : 0) + 5);
    return { views: [v], label };
  });
}

describe('the logistic-regression head', () => {
  it('learns two separated classes (1 in 4 NG); the weight points along the axis that separates them', () => {
    const { params } = trainHead(clouds(200, 1, 6), clouds(80, 2, 6), DEFAULT_TRAIN);
    const val = clouds(80, 2, 6);
    const right = val.filter((e) => logitOf(params, e.views[0]) > 0 === (e.label === 1)).length;
    expect(right / val.length).toBeGreaterThan(0.97);
    expect(Math.abs(params.weight[0])).toBeGreaterThan(
      3 * Math.max(...Array.from(params.weight.slice(1), Math.abs)),
    );
  });

  it('stops when the validation loss stops improving and keeps the best epoch', () => {
    // overlapping classes: the validation loss reaches its floor and stays there
    const { history, bestEpoch } = trainHead(clouds(40, 3, 1.5), clouds(40, 4, 1.5), {
      ...DEFAULT_TRAIN,
      epochs: 5000,
      patience: 25,
    });
    expect(history.length).toBeLessThan(5000);
    expect(history.length - bestEpoch).toBe(25);
    const best = history[bestEpoch - 1].val_loss!;
    expect(Math.min(...history.map((r) => r.val_loss!))).toBeGreaterThanOrEqual(best - 1e-6);
  });

  it('weighs the classes equally: a constant guess costs log 2 whatever the class ratio', () => {
    const labels = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    expect(balancedLoss(new Array(10).fill(0), labels).loss).toBeCloseTo(Math.log(2), 10);
    // always saying OK is 90 % accurate but not cheap
    expect(balancedLoss(new Array(10).fill(-5), labels).loss).toBeGreaterThan(1);
  });

  it('temperature scaling finds the temperature the labels were drawn with', () => {
    const r = mulberry32(3);
    const logits = Array.from({ length: 4000 }, () => (r() * 2 - 1) * 12);
    const labels = logits.map((z) => (r() < 1 / (1 + Math.exp(-z / 3)) ? 1 : 0));
    expect(fitTemperature(logits, labels)).toBeGreaterThan(2.7);
    expect(fitTemperature(logits, labels)).toBeLessThan(3.3);
    // too few NG images: left at 1
    expect(fitTemperature([1, 2, 3, -1], [1, 0, 0, 0])).toBe(1);
  });

  it('calibration error as counted by hand', () => {
    // bin 0.9–1: p 0.95 twice, one NG → |0.5 − 0.95| · 2/4; bin 0.1–0.2: p 0.15 twice, both OK → 0.15 · 2/4
    expect(calibrationError([0.95, 0.95, 0.15, 0.15], [1, 0, 0, 0])).toBeCloseTo(0.45 * 0.5 + 0.15 * 0.5, 10);
    expect(calibrationError([], [])).toBeNull();
  });
});

describe('the class activation map', () => {
  it('averages to the image’s logit (exact for a linear head on averaged features)', () => {
    const r = mulberry32(5);
    const C = 6;
    const [h, w] = [4, 5];
    const rows = Float32Array.from({ length: h * w * C }, () => r() * 4 - 2);
    const head = {
      mean: Float32Array.from({ length: C }, () => r()),
      std: Float32Array.from({ length: C }, () => 0.5 + r()),
      weight: Float32Array.from({ length: C }, () => r() * 2 - 1),
      bias: 0.3,
      temperature: 1.7,
    };
    const grid = activation(head, rows, 0, h * w, C);
    const mean = grid.reduce((s, v) => s + v, 0) / grid.length;
    expect(mean).toBeCloseTo(logitOf(head, pooledRows(rows, 0, h * w, C)), 5);
  });
});

describe('augmentation', () => {
  const W = 8;
  const rgb = Uint8Array.from({ length: W * W * 3 }, (_, i) => (i * 37) % 251);
  const sorted = (a: Uint8Array) => Array.from(a).sort((x, y) => x - y);

  it('flips and quarter turns move pixels without changing them; the same seed gives the same copy', () => {
    for (let seed = 0; seed < 8; seed++) {
      const a = augment({ rgb, width: W, height: W }, new Set(['flip', 'rot90'] as const), mulberry32(seed));
      expect(sorted(a.rgb)).toEqual(sorted(rgb));
      const b = augment({ rgb, width: W, height: W }, new Set(['flip', 'rot90'] as const), mulberry32(seed));
      expect(b.rgb).toEqual(a.rgb);
    }
  });

  it('with nothing enabled, the image is unchanged; with everything, it changes but keeps its size', () => {
    expect(augment({ rgb, width: W, height: W }, new Set(), mulberry32(1)).rgb).toEqual(rgb);
    const all = augment({ rgb, width: W, height: W }, new Set(AUGMENTATIONS), mulberry32(1));
    expect(all.rgb.length).toBe(rgb.length);
    expect(all.rgb).not.toEqual(rgb);
  });
});
