/**
 * kensa classify from the command line (built dist/), on a generated data set whose first three test
 * images of each defect type are moved into train/<type>/: train writes the classifier and its learning
 * curves, test writes metrics (with a calibration error), curves, figures with class activation maps and
 * the report, predict gives verdicts with regions on NG images only. Bad input: no NG folder, no good
 * images, a single NG image, an unreadable image, the wrong kind of model — each a clear message.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { thresholdText } from '../../src/cli/options.js';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { moveDefectsToTrain } from '../helpers.js';

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'kensa-classify-'));
const data = join(dir, 'data');
const model = join(dir, 'm.classifier');
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
const kensa = (...args: string[]) => {
  const r = run(...args);
  if (r.status !== 0) throw new Error(`kensa ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r;
};

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 96, train: 24, testGood: 8, testPerDefect: 9, seed: 51 });
  // good images in a sub-folder of train/good stay good
  mkdirSync(join(data, 'train', 'good', 'older'));
  for (const f of readdirSync(join(data, 'train', 'good'))
    .filter((f) => f.endsWith('.png'))
    .slice(0, 4))
    renameSync(join(data, 'train', 'good', f), join(data, 'train', 'good', 'older', f));
  moveDefectsToTrain(data, 3);
});

describe('kensa classify', () => {
  it('train: the classifier, its thresholds and learning curves', () => {
    const r = kensa(
      'classify',
      'train',
      '--data',
      data,
      '--size',
      '96',
      '--out',
      model,
      '--head',
      'image',
      '--copies',
      '2',
    );
    expect(r.stdout).toContain(`classifier written: ${model}`);
    // 24 good (4 of them in train/good/older) and 6 NG images, a fifth of each class for validation
    expect(r.stdout).toContain('19 good and 5 NG training images');
    expect(r.stdout).toContain('validation 5 good, 1 NG');
    expect(r.stdout).toMatch(
      /\d+ good and \d+ NG training images \(\+2 augmented copies each: flip, rot90, rotate, shift, color, blur\)/,
    );
    expect(r.stdout).toMatch(/thresholds \(probability of NG\): fpr0 [\d.e-]+, f1 [\d.e-]+/);
    expect(existsSync(join(dir, 'm.learning.png'))).toBe(true);
    // the same data and seed give the same classifier
    kensa(
      'classify',
      'train',
      '--data',
      data,
      '--size',
      '96',
      '--out',
      join(dir, 'again.classifier'),
      '--head',
      'image',
      '--copies',
      '2',
    );
    expect(readFileSync(join(dir, 'again.classifier')).equals(readFileSync(model))).toBe(true);
  });

  it('test: metrics with calibration, curves, figures with class activation maps, the report', () => {
    const out = join(dir, 'test');
    const r = kensa('classify', 'test', '--model', model, '--data', data, '--out', out, '--report');
    expect(r.stdout).toMatch(/image AUROC [\d.]+, calibration error [\d.]+/);
    // the train/<defect> folders are the classifier's own: a test run does not call them left out
    expect(r.stderr).not.toContain('left out');
    expect(r.stdout).toMatch(/ {2}dust: \d+ of 6 found at fpr0/);
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(m.image_auroc).toBeGreaterThan(0.9);
    expect(m.counts).toMatchObject({ good: 8, defective: 12 });
    expect(m.calibration_error).toBeGreaterThanOrEqual(0);
    expect(m.confusion.fpr0.tp + m.confusion.fpr0.fn).toBe(12);
    expect(m.by_type.dust.images + m.by_type.scratch.images).toBe(12);
    expect(m.by_type.good.images).toBe(8);
    for (const f of ['roc.png', 'pr.png', 'learning_curves.png', 'predictions.csv', 'ng_list.txt'])
      expect(existsSync(join(out, f)), f).toBe(true);
    expect(readdirSync(join(out, 'figures'))).toHaveLength(20);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('src="learning_curves.png"');
  });

  it('the summaries show a probability threshold that does not round to 1', () => {
    // the MTD patch head's fpr0 (0.99976) read "threshold 1.000"
    expect(thresholdText(0.99976)).toBe('0.9998');
    expect(thresholdText(0.9999996)).toBe('0.9999996');
    expect(thresholdText(0.000006135)).toBe('0.000006135');
    expect(thresholdText(12.591)).toBe('12.591');
    expect(thresholdText(1)).toBe('1.000');
  });

  it('predict: verdicts, regions on NG images only, NG list, overlays', () => {
    const out = join(dir, 'predict');
    const r = kensa('classify', 'predict', '--model', model, '--out', out, join(data, 'test'));
    expect(r.stdout).toMatch(/20 images: \d+ NG, \d+ OK/);
    const json = JSON.parse(readFileSync(join(out, 'predictions.json'), 'utf8'));
    for (const p of json.predictions) {
      expect(p.score).toBeGreaterThan(0);
      // a probability, as float32 (a confident NG image is 1)
      expect(p.score).toBeLessThanOrEqual(1);
      expect(p.verdict).toBe(p.score > json.threshold ? 'NG' : 'OK');
      expect(p.regions.length > 0).toBe(p.verdict === 'NG');
    }
    const ng = json.predictions
      .filter((p: { verdict: string }) => p.verdict === 'NG')
      .map((p: { file: string }) => p.file);
    expect(readFileSync(join(out, 'ng_list.txt'), 'utf8').trim().split('\n').filter(Boolean)).toEqual(ng);
    expect(readdirSync(join(out, 'overlays'))).toHaveLength(20);
  });

  it('bad input: clear messages', async () => {
    // no NG folder
    const onlyGood = join(dir, 'only-good');
    await makeSyntheticDataset(onlyGood, { size: 64, train: 4, testGood: 1, testPerDefect: 1, seed: 3 });
    let r = run('classify', 'train', '--data', onlyGood, '--out', join(dir, 'x.classifier'));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('no NG images: put them in a folder per defect type under train/');
    // neither --data nor --good/--ng
    r = run('classify', 'train', '--out', join(dir, 'x.classifier'));
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('give --data DIR, or both --good and --ng');
    // a single NG image, and an unreadable one among the good: trained, with warnings
    const one = join(dir, 'one');
    mkdirSync(join(one, 'ng'), { recursive: true });
    renameSync(
      join(onlyGood, 'test', 'dust', readdirSync(join(onlyGood, 'test', 'dust'))[0]),
      join(one, 'ng', 'a.png'),
    );
    writeFileSync(join(onlyGood, 'train', 'good', 'broken.png'), 'not an image');
    r = run(
      'classify',
      'train',
      '--good',
      join(onlyGood, 'train', 'good'),
      '--ng',
      join(one, 'ng'),
      '--size',
      '64',
      '--out',
      join(one, 'm.classifier'),
      '--head',
      'image',
      '--copies',
      '1',
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('1 NG image: it is used for training');
    expect(r.stderr).toMatch(/left out: .*broken\.png: cannot decode the image/);
    // the wrong kind of model, both ways
    r = run('classify', 'predict', '--model', join(dir, 'nope.kensa'), '--out', join(dir, 'p2'), data);
    expect(r.status).toBe(1);
    kensa('train', '--data', onlyGood, '--size', '64', '--out', join(dir, 'anomaly.kensa'));
    r = run('classify', 'predict', '--model', join(dir, 'anomaly.kensa'), '--out', join(dir, 'p3'), data);
    expect(r.stderr).toContain('this is an anomaly model (kensa train), not a classifier');
    // kensa predict takes a classifier like any model: the same results as kensa classify predict
    r = run('predict', '--model', model, '--out', join(dir, 'p4'), join(data, 'test'));
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'p4', 'predictions.csv'), 'utf8')).toBe(
      readFileSync(join(dir, 'predict', 'predictions.csv'), 'utf8'),
    );
    // and kensa train does not fit it
    r = run('train', '--data', onlyGood, '--method', 'classifier', '--out', join(dir, 'c.kensa'));
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('learns from good and NG images: train it with kensa classify train');
    r = run(
      'classify',
      'train',
      '--data',
      data,
      '--out',
      join(dir, 'y.classifier'),
      '--head',
      'image',
      '--augment',
      'mirror',
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      "Expected all, none or a list of flip, rot90, rotate, shift, color, blur for --augment but received 'mirror'",
    );
  });
});

describe('kensa classify with the patch head (the default)', () => {
  const patch = join(dir, 'patch.kensa');
  it('train: the ensemble and the head, every image scored out-of-fold; test and predict', () => {
    const r = kensa('classify', 'train', '--data', data, '--size', '96', '--out', patch);
    expect(r.stdout).toContain(`classifier written: ${patch}`);
    expect(r.stdout).toMatch(
      /patch head on the ensemble \(PatchCore and PaDiM\): 24 good and 6 NG images, every one scored out-of-fold \(5 folds; fold heads' best epochs \d+(, \d+){4}\)/,
    );
    // the summary lists the highest calibration images, each against the next in odds (probabilities)
    expect(r.stdout).toContain('highest calibration scores (the first sets fpr0;');
    expect(r.stdout).toMatch(/\(odds [\d.]+ % above the next's\)/);
    expect(r.stdout).toContain(`kensa threshold --model ${patch} --exclude FILE`);
    // fpr0 rests on every good image (kensa threshold lists them, and can leave an odd one out)
    expect(kensa('threshold', '--model', patch).stdout).toContain('calibration: 24 good images (5 folds)');
    // the same data and seed give the same model
    kensa('classify', 'train', '--data', data, '--size', '96', '--out', join(dir, 'patch-again.kensa'));
    expect(readFileSync(join(dir, 'patch-again.kensa')).equals(readFileSync(patch))).toBe(true);
    const out = join(dir, 'patch-test');
    const t = kensa('classify', 'test', '--model', patch, '--data', data, '--out', out, '--no-figures');
    expect(t.stdout).toMatch(/image AUROC [\d.]+/);
    const m = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(m.image_auroc).toBeGreaterThan(0.9);
    expect(m.counts).toMatchObject({ good: 8, defective: 12 });
    const p = kensa(
      'classify',
      'predict',
      '--model',
      patch,
      '--out',
      join(dir, 'patch-predict'),
      join(data, 'test'),
    );
    expect(p.stdout).toMatch(/20 images: \d+ NG, \d+ OK/);
  });

  it('--anomaly-method patchcore: the head on PatchCore alone, a smaller file', () => {
    const pc = join(dir, 'patch-pc.kensa');
    const r = kensa(
      'classify',
      'train',
      '--data',
      data,
      '--size',
      '96',
      '--anomaly-method',
      'patchcore',
      '--out',
      pc,
    );
    expect(r.stdout).toMatch(/patch head on PatchCore: 24 good and 6 NG images/);
    expect(statSync(pc).size).toBeLessThan(statSync(patch).size / 4);
    const t = kensa(
      'classify',
      'test',
      '--model',
      pc,
      '--data',
      data,
      '--out',
      join(dir, 'pc-test'),
      '--no-figures',
    );
    expect(t.stdout).toMatch(/image AUROC [\d.]+/);
  });

  it("refuses the image head's options, and --folds or --anomaly-method with the image head", () => {
    const refused = (message: string, ...options: string[]) => {
      const r = run('classify', 'train', '--data', data, '--out', join(dir, 'z.kensa'), ...options);
      expect(r.status, options.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
    };
    refused('--copies applies to --head image only', '--copies', '2');
    refused('--folds applies to the patch head (the default)', '--head', 'image', '--folds', '3');
    refused("Expected patch or image for --head but received 'pixel'", '--head', 'pixel');
    refused(
      "Expected ensemble or patchcore for --anomaly-method but received 'padim'",
      '--anomaly-method',
      'padim',
    );
    refused(
      '--anomaly-method applies to the patch head (the default)',
      '--head',
      'image',
      '--anomaly-method',
      'patchcore',
    );
    expect(existsSync(join(dir, 'z.kensa'))).toBe(false);
  });
});
