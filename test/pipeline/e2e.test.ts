/**
 * The whole workflow through the command line (built dist/): train twice (byte-identical models), test
 * (metrics, curves, predictions, figures, --save-model), predict with the stored f1 threshold.
 * Uses the real EfficientNet-Lite0 weights (cache, else download) and a generated data set.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const kensa = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kensa ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r;
};
const dir = mkdtempSync(join(tmpdir(), 'kensa-e2e-'));
const data = join(dir, 'data');
const csv = (path: string) =>
  readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(','));

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 128, train: 30, testGood: 6, testPerDefect: 6, seed: 11 });
});

describe('train → test → predict from the command line', () => {
  it('train writes a model; the same data and seed give a byte-identical file', () => {
    const r = kensa('train', '--data', data, '--out', join(dir, 'a.kensa'), '--seed', '3', '--size', '128');
    expect(r.stdout).toContain('model written');
    expect(r.stderr).toContain('warning: 27 training images for 176 channels');
    kensa('train', '--data', data, '--out', join(dir, 'b.kensa'), '--seed', '3', '--size', '128');
    expect(readFileSync(join(dir, 'a.kensa')).equals(readFileSync(join(dir, 'b.kensa')))).toBe(true);
  });

  it('test writes metrics, curves, predictions and one figure per image', () => {
    const out = join(dir, 'test');
    kensa(
      'test',
      '--model',
      join(dir, 'a.kensa'),
      '--data',
      data,
      '--out',
      out,
      '--save-model',
      join(dir, 'f1.kensa'),
    );
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    for (const key of [
      'image_auroc',
      'pixel_auroc',
      'aupro',
      'image_ap',
      'image_f1_max',
      'thresholds',
      'confusion',
      'counts',
      'timings_s',
    ]) {
      expect(m).toHaveProperty(key);
    }
    expect(m.counts).toMatchObject({ images: 18, good: 6, defective: 12, with_mask: 12 });
    expect(m.image_auroc).toBeGreaterThan(0.9);
    expect(m.pixel_auroc).toBeGreaterThan(0.9);
    expect(m.aupro).toBeGreaterThan(0.5);
    expect(m.confusion.fpr0.tp + m.confusion.fpr0.fn).toBe(12);
    expect(m.thresholds.f1).toEqual(expect.any(Number));
    expect(existsSync(join(out, 'roc.png')) && existsSync(join(out, 'pr.png'))).toBe(true);
    expect(readdirSync(join(out, 'figures')).length).toBe(18);
    expect(csv(join(out, 'predictions.csv')).length).toBe(19);
    expect(existsSync(join(dir, 'f1.kensa'))).toBe(true);
  });

  it('predict with the stored f1 threshold: CSV, JSON with boxes, NG list, overlays; scores as in test', () => {
    const out = join(dir, 'predict');
    const r = kensa(
      'predict',
      '--model',
      join(dir, 'f1.kensa'),
      '--threshold',
      'f1',
      '--out',
      out,
      join(data, 'test'),
    );
    expect(r.stdout).toMatch(/18 images: \d+ NG, \d+ OK/);
    const json = JSON.parse(readFileSync(join(out, 'predictions.json'), 'utf8'));
    expect(json.predictions).toHaveLength(18);
    const ng = json.predictions.filter((p: { verdict: string }) => p.verdict === 'NG');
    const list = readFileSync(join(out, 'ng_list.txt'), 'utf8').trim().split('\n').filter(Boolean);
    expect(list).toEqual(ng.map((p: { file: string }) => p.file));
    for (const p of ng) {
      expect(p.regions.length).toBeGreaterThan(0);
      const b = p.regions[0];
      expect(b.x).toBeGreaterThanOrEqual(0);
      expect(b.x + b.width).toBeLessThanOrEqual(128.5);
      expect(b.peak_score).toBeGreaterThan(json.threshold);
    }
    expect(readdirSync(join(out, 'overlays')).length).toBe(18);
    // the same image scores the same here as in `kensa test` (other batch, other run)
    const tested = new Map(
      csv(join(dir, 'test', 'predictions.csv'))
        .slice(1)
        .map((row) => [row[0], Number(row[3])]),
    );
    for (const p of json.predictions)
      expect(Math.abs(p.score - tested.get(p.file)!) / p.score).toBeLessThan(1e-4);
  });

  it('refuses a threshold the model does not have, naming the choices', () => {
    const r = spawnSync(
      process.execPath,
      [BIN, 'predict', '--model', join(dir, 'a.kensa'), '--threshold', 'f1', '--out', join(dir, 'x'), data],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('the model has no f1 threshold; run kensa test --save-model');
  });
});
