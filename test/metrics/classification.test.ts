import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { auroc, averagePrecision, bestF1, confusion } from '../../src/metrics/classification.js';
import { fixture } from '../helpers.js';

const cases = JSON.parse(readFileSync(fixture('metrics', 'classification.json'), 'utf8')) as {
  scores: number[];
  labels: number[];
  roc_auc: number;
  average_precision: number;
  f1_max: number;
}[];

describe('image-level metrics agree with scikit-learn', () => {
  cases.forEach((c, i) => {
    it(`case ${i} (${c.scores.length} scores${new Set(c.scores).size < c.scores.length ? ', with ties' : ''})`, () => {
      expect(Math.abs(auroc(c.scores, c.labels).value! - c.roc_auc)).toBeLessThan(1e-9);
      expect(Math.abs(averagePrecision(c.scores, c.labels).value! - c.average_precision)).toBeLessThan(1e-9);
      const best = bestF1(c.scores, c.labels);
      expect(Math.abs(best.f1.value! - c.f1_max)).toBeLessThan(1e-9);
      // the threshold reproduces the F1 under "NG when score > threshold"
      const k = confusion(c.scores, c.labels, best.threshold!);
      expect((2 * k.tp) / (2 * k.tp + k.fp + k.fn)).toBeCloseTo(c.f1_max, 12);
    });
  });

  it('undefined metrics are null with a reason, never NaN', () => {
    expect(auroc([0.1, 0.2], [0, 0])).toEqual({
      value: null,
      reason: 'no defective images (or pixels) to measure',
    });
    expect(auroc([0.1, 0.2], [1, 1])).toEqual({
      value: null,
      reason: 'no good images (or pixels) to measure',
    });
    expect(averagePrecision([0.1], [0]).value).toBeNull();
    expect(bestF1([0.3], [0]).threshold).toBeNull();
    // defective images only: every threshold below them has F1 = 1, so none is learnt, and AP is undefined
    expect(bestF1([0.3, 0.5, 0.9], [1, 1, 1])).toEqual({
      f1: { value: null, reason: 'no good images (or pixels) to measure' },
      threshold: null,
    });
    expect(averagePrecision([0.3, 0.5], [1, 1])).toEqual({
      value: null,
      reason: 'no good images (or pixels) to measure',
    });
    expect(confusion([0.5], [1], 0.1)).toMatchObject({ tp: 1, fpr: null, recall: 1 });
  });
});
