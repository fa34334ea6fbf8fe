/** The calibration's thresholds, exclusions, names for its images, drift, and what is said about them. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  calibrationWarnings,
  findCalibrationImage,
  highestCalibration,
  keptScores,
  promise,
  rankedLine,
  standsAbove,
  summarize,
  testSummary,
  withExclusions,
} from '../../../src/pipeline/contracts/calibration.js';
import { betaBinomialTail, DriftMonitor } from '../../../src/pipeline/contracts/drift.js';
import { confusion } from '../../../src/metrics/classification.js';
import { mulberry32 } from '../../../src/util/random.js';
import { sha256File } from '../../../src/util/hash.js';

const dir = mkdtempSync(join(tmpdir(), 'kensa-calibration-'));
const scores = [3, 9, 4, 5.5, 5, 1];
const images = scores.map((_, i) => ({ file: join(dir, 'good', `${i}.png`), sha256: `hash${i}` }));
const base = { mode: 'loo' as const, quantile: 0.5, display: [0, 1] as [number, number], images };

describe('calibration', () => {
  it('fpr0 is the highest kept score, quantile their quantile; an excluded image counts for neither', () => {
    const { calibration, thresholds } = summarize(scores, base);
    expect(thresholds).toEqual({ fpr0: 9, quantile: 4.5 });
    expect(calibration.highest).toEqual({ file: images[1].file, score: 9 });
    expect(calibration.next).toEqual({ file: images[3].file, score: 5.5 });
    const without = withExclusions(scores, calibration, { exclude: [1] }, '2026-12-01T00:00:00Z');
    expect(without.thresholds).toEqual({ fpr0: 5.5, quantile: 4 });
    expect(without.calibration.excluded).toEqual([{ index: 1, at: '2026-12-01T00:00:00Z' }]);
    expect(without.calibration.scores.count).toBe(5);
    expect(without.calibration.false_alarm_bound_95).toBeCloseTo(3 / 5);
    expect(keptScores(scores, without.calibration)).toEqual([3, 4, 5.5, 5, 1]);
    // taken back: as before; everything excluded: refused
    const back = withExclusions(scores, without.calibration, { include: [1] });
    expect(back.thresholds).toEqual(thresholds);
    expect(back.calibration.excluded).toBeUndefined();
    expect(() => withExclusions(scores, calibration, { exclude: [0, 1, 2, 3, 4, 5] })).toThrow(
      'every calibration image would be left out',
    );
  });

  it('lists the highest, each with how far it stands above the next kept one; excluded ones marked in place', () => {
    const { calibration } = summarize(scores, base);
    const rows = highestCalibration(scores, calibration, 3);
    expect(rows.map((r) => [r.index, r.excluded])).toEqual([
      [1, false],
      [3, false],
      [4, false],
    ]);
    expect(rows[0].above).toBeCloseTo(9 / 5.5 - 1);
    const c2 = withExclusions(scores, calibration, { exclude: [1] }).calibration;
    const rows2 = highestCalibration(scores, c2, 2);
    expect(rows2.map((r) => [r.index, r.excluded, r.above === null ? null : +r.above.toFixed(4)])).toEqual([
      [1, true, null],
      [3, false, +(5.5 / 5 - 1).toFixed(4)],
      [4, false, +(5 / 4 - 1).toFixed(4)],
    ]);
  });

  it("probabilities (a classifier's) stand above the next in odds: one near 1 is named, a close one is not", () => {
    // the MTD patch head's highest calibration probabilities: 0.5 % apart, 29 times the odds
    const p = [0.9998, 0.9943, 0.9828, 0.5, 0.1];
    const named = p.map((_, i) => ({ file: join(dir, 'good', `p${i}.png`) }));
    const { calibration } = summarize(p, { ...base, images: named, scale: 'odds' });
    expect(calibration.scale).toBe('odds');
    const [top, second] = highestCalibration(p, calibration, 2);
    expect(top.measure).toBe('odds');
    expect(top.above).toBeCloseTo(0.9998 / 0.0002 / (0.9943 / 0.0057) - 1, 6);
    expect(second.above).toBeCloseTo(0.9943 / 0.0057 / (0.9828 / 0.0172) - 1, 6);
    expect(rankedLine(top)).toMatch(/\(odds 2765\.8 % above the next's\)$/);
    const [warning] = calibrationWarnings(calibration).filter((w) => w.startsWith('one good image'));
    expect(warning).toMatch(
      /^one good image sets the fpr0 threshold 2766 % above the next in odds, p \/ \(1 − p\): /,
    );
    expect(warning).toContain(named[0].file);
    // the same scores as scores: 0.6 % above the next, no warning; a probability of 1 stays finite
    const plain = summarize(p, { ...base, images: named }).calibration;
    expect(highestCalibration(p, plain, 1)[0].above).toBeCloseTo(0.9998 / 0.9943 - 1, 6);
    expect(calibrationWarnings(plain).some((w) => w.startsWith('one good image'))).toBe(false);
    expect(Number.isFinite(standsAbove(1, 0.99, 'odds'))).toBe(true);
    // equal probabilities of 1 (float32 saturates) stand 0 % apart
    expect(standsAbove(1, 1, 'odds')).toBe(0);
  });

  it('finds the image a user names: by path, by content (a moved copy), by the end of its path; refuses others', async () => {
    const copy = join(dir, 'moved.png');
    writeFileSync(copy, 'the bytes of image 2');
    const named = [
      ...images.slice(0, 2),
      { file: join(dir, 'good', '2.png'), sha256: (await sha256File(copy)).slice(0, 16) },
      { file: join(dir, 'other', '2.png') },
    ];
    expect(await findCalibrationImage(named, images[1].file)).toBe(1);
    expect(await findCalibrationImage(named, copy)).toBe(2);
    expect(await findCalibrationImage(named, 'good/0.png')).toBe(0);
    await expect(findCalibrationImage(named, '2.png')).rejects.toThrow(
      '2.png: 2 calibration images end with this name',
    );
    await expect(findCalibrationImage(named, 'nowhere.png')).rejects.toThrow(
      "nowhere.png: not one of the model's 4 calibration images",
    );
  });

  it('says what fpr0 promises and what each threshold catches on a test set', () => {
    expect(promise(761, 38.2)).toBe(
      'fpr0 38.20: no false alarm on any of the 761 good images scored for calibration; on new good images of the same kind that supports a false-alarm rate below 0.39 % (95 % confidence)',
    );
    const s = [1, 2, 3, 10, 11, 2.5];
    const l = [0, 0, 0, 1, 1, 1];
    const lines = testSummary({ fpr0: confusion(s, l, 3), f1: confusion(s, l, 2.2) }, 50, 3);
    expect(lines[1]).toBe(
      'on this test set fpr0 finds 2 of the 3 defective images (66.7 %), with 0 false alarms on the 3 good images',
    );
    expect(lines[2]).toMatch(
      /^f1 \(2\.200, best F1 here\) would find 3 of the 3 defective images \(100\.0 %\), with 1 false alarm on the 3 good images/,
    );
  });
});

describe('drift', () => {
  it('the beta-binomial tail equals the chance that new scores exceed an order statistic, by simulation', () => {
    // n = 20 calibration scores, level = the 2nd highest; N = 30 new scores from the same distribution
    const rand = mulberry32(3);
    let hits = 0;
    const trials = 20_000;
    for (let t = 0; t < trials; t++) {
      const cal = Array.from({ length: 20 }, rand).sort((a, b) => b - a);
      let k = 0;
      for (let j = 0; j < 30; j++) if (rand() > cal[1]) k++;
      if (k >= 9) hits++;
    }
    expect(betaBinomialTail(9, 30, 2, 19)).toBeCloseTo(hits / trials, 2);
    expect(betaBinomialTail(0, 30, 2, 19)).toBe(1);
    expect(betaBinomialTail(31, 30, 2, 19)).toBe(0);
  });

  it('stays quiet for new scores like the calibration ones, speaks once when they rise', () => {
    const rand = mulberry32(11);
    const calibration = Array.from({ length: 300 }, () => 10 + rand() * 5);
    const monitor = new DriftMonitor(calibration, 100);
    for (let i = 0; i < 500; i++) expect(monitor.add(10 + rand() * 5)).toBeUndefined();
    expect(monitor.status().drifting).toBe(false);
    // a lamp dims: scores rise by a third of their spread, still mostly below fpr0 (15)
    const said = [];
    for (let i = 0; i < 100; i++) {
      const s = monitor.add(11.7 + rand() * 3.3);
      if (s) said.push(s);
    }
    expect(said).toHaveLength(1);
    expect(said[0].above).toBeGreaterThan(2 * said[0].expected);
    expect(said[0].p_value).toBeLessThan(1e-4);
    expect(monitor.status().median_ratio).toBeGreaterThan(1.05);
    // too few images to judge: no verdict
    const few = new DriftMonitor(calibration);
    for (let i = 0; i < 20; i++) few.add(100);
    expect(few.status().drifting).toBe(false);
  });

  it('a small calibration set is not mistaken for drift (the level itself is an estimate)', () => {
    // 40 calibration scores, 200 new ones of the same kind, 500 times: warned at most at the 1e-4 rate
    const rand = mulberry32(5);
    let warned = 0;
    for (let t = 0; t < 500; t++) {
      const monitor = new DriftMonitor(Array.from({ length: 40 }, rand));
      for (let i = 0; i < 200; i++) monitor.add(rand());
      if (monitor.status().drifting) warned++;
    }
    expect(warned).toBeLessThanOrEqual(1);
  });
});
