/**
 * The whole workflow through the command line (built dist/), for every method: train twice
 * (byte-identical models), test (metrics, curves, predictions, figures, the f1 threshold stored in the
 * model's header), predict with the stored f1 threshold. Uses the real EfficientNet-Lite0 weights (cache,
 * else download) and a generated data set.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { UNSUPERVISED_METHODS } from '../../src/models/registry.js';
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

describe.each(UNSUPERVISED_METHODS)('train → test → predict from the command line (%s)', (method) => {
  const model = join(dir, `${method}.kensa`);

  it('train writes a model; the same data and seed give a byte-identical file', () => {
    const args = ['train', '--method', method, '--data', data, '--seed', '3', '--size', '128'];
    const r = kensa(...args, '--out', model);
    expect(r.stdout).toContain(`model written: ${model}`);
    // PaDiM: leave-one-out in closed form; PatchCore: 5 folds; the ensemble: each member its own way
    expect(r.stdout).toContain(
      {
        padim: 'calibrated on 30 leave-one-out scores',
        patchcore: 'calibrated on 30 out-of-fold scores (5 folds)',
        ensemble: 'calibrated on 30 out-of-sample scores (PatchCore: 5 folds; PaDiM: leave-one-out)',
      }[method],
    );
    expect(r.stderr).toContain(
      'warning: 30 good images were scored for calibration: no false alarm on them supports a false-alarm rate below 10.0 %',
    );
    if (method !== 'patchcore') expect(r.stderr).toContain('warning: 30 training images for 176 channels');
    kensa(...args, '--out', join(dir, `${method}-again.kensa`));
    expect(readFileSync(model).equals(readFileSync(join(dir, `${method}-again.kensa`)))).toBe(true);
  });

  it('test writes metrics, curves, predictions and one figure per image; --save-model stores f1 in the header', () => {
    const out = join(dir, `${method}-test`);
    const size = statSync(model).size;
    const r = kensa('test', '--model', model, '--data', data, '--out', out, '--save-model');
    expect(r.stdout).toContain(`f1 threshold`);
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
    ])
      expect(m).toHaveProperty(key);
    expect(m.counts).toMatchObject({ images: 18, good: 6, defective: 12, with_mask: 12 });
    expect(m.image_auroc).toBeGreaterThan(0.9);
    expect(m.pixel_auroc).toBeGreaterThan(0.9);
    expect(m.aupro).toBeGreaterThan(0.5);
    expect(m.confusion.fpr0.tp + m.confusion.fpr0.fn).toBe(12);
    expect(m.thresholds.f1).toEqual(expect.any(Number));
    expect(existsSync(join(out, 'roc.png')) && existsSync(join(out, 'pr.png'))).toBe(true);
    expect(readdirSync(join(out, 'figures')).length).toBe(18);
    expect(csv(join(out, 'predictions.csv')).length).toBe(19);
    // the model file keeps its size: only the header changed
    expect(statSync(model).size).toBe(size);
    expect(kensa('threshold', '--model', model).stdout).toMatch(/f1\s+\d/);
  });

  it('predict with the stored f1 threshold: CSV, JSON with boxes, NG list, overlays; scores as in test', () => {
    const out = join(dir, `${method}-predict`);
    const r = kensa('predict', '--model', model, '--threshold', 'f1', '--out', out, join(data, 'test'));
    expect(r.stdout).toMatch(/18 images: \d+ NG, \d+ OK/);
    const json = JSON.parse(readFileSync(join(out, 'predictions.json'), 'utf8'));
    expect(json.predictions).toHaveLength(18);
    const ng = json.predictions.filter((p: { verdict: string }) => p.verdict === 'NG');
    const list = readFileSync(join(out, 'ng_list.txt'), 'utf8').trim().split('\n').filter(Boolean);
    expect(list).toEqual(ng.map((p: { file: string }) => p.file));
    for (const p of json.predictions) {
      // an NG image has at least one region, an OK image none: verdicts and regions agree
      expect(p.regions.length > 0).toBe(p.verdict === 'NG');
      for (const b of p.regions) {
        expect(b.x).toBeGreaterThanOrEqual(0);
        expect(b.x + b.width).toBeLessThanOrEqual(128);
        expect(b.peak_score).toBeGreaterThan(json.threshold);
      }
    }
    const regions = csv(join(out, 'regions.csv'));
    expect(regions.length - 1).toBe(
      json.predictions.reduce((s: number, p: { regions: unknown[] }) => s + p.regions.length, 0),
    );
    expect(readdirSync(join(out, 'overlays')).length).toBe(18);
    // the same image scores the same here as in `kensa test` (other batch, other run)
    const tested = new Map(
      csv(join(dir, `${method}-test`, 'predictions.csv'))
        .slice(1)
        .map((row) => [row[0], Number(row[3])]),
    );
    for (const p of json.predictions)
      expect(Math.abs(p.score - tested.get(p.file)!) / p.score).toBeLessThan(1e-4);
  });
});

describe('thresholds', () => {
  it('refuses a threshold the model does not have, naming the choices', () => {
    const r = spawnSync(
      process.execPath,
      [
        BIN,
        'predict',
        '--model',
        join(dir, 'padim-again.kensa'),
        '--threshold',
        'f1',
        '--out',
        join(dir, 'x'),
        data,
      ],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('the model has no f1 threshold; run kensa test --save-model');
  });
});
