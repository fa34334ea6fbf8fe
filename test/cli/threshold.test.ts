/**
 * kensa threshold and the calibration from the command line (built dist/): train lists the highest
 * calibration images and says what fpr0 promises; kensa threshold lists the thresholds (marking the one
 * predict uses) and those images; --exclude of the first one lowers fpr0 with no re-training (the
 * tensors untouched, the change recorded), --include takes it back, --set and --unset a custom threshold;
 * kensa test says what each threshold catches, and refuses to store an f1 threshold from one class.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { parseSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';
import { loadModel } from '../../src/pipeline/contracts/model-file.js';

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
const dir = mkdtempSync(join(tmpdir(), 'kensa-threshold-'));
const data = join(dir, 'data');
const odd = () => join(data, 'train', 'good', 'odd.png');
let trained: ReturnType<typeof run>;

/** The tensors' bytes of a model file (everything after the header). */
const tensorBytes = (file: string) => {
  const b = readFileSync(file);
  return b.subarray(8 + Number(b.readBigUInt64LE(0)));
};

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 64, train: 16, testGood: 4, testPerDefect: 4, seed: 31 });
  // one odd good image: a darker, blurred part that sets fpr0 far above the others
  await sharp(join(data, 'train', 'good', '003.png'))
    .linear(0.4, 0)
    .blur(2)
    .toFile(odd());
  trained = run('train', '--method', 'padim', '--data', data, '--out', join(dir, 'm.kensa'), '--size', '64');
  if (trained.status !== 0) throw new Error(trained.stderr);
});

describe('kensa threshold', () => {
  it('train says what fpr0 promises and lists the highest calibration images, the odd one first', () => {
    expect(trained.stdout).toContain('calibrated on 17 leave-one-out scores');
    expect(trained.stdout).toMatch(
      /fpr0 [\d.]+: no false alarm on any of the 17 good images scored for calibration; on new good images of the same kind that supports a false-alarm rate below 17\.6 %/,
    );
    const listed = trained.stdout.split('\n').filter((l) => /^\s+\d+\.\d{4} {2}\//.test(l));
    expect(listed).toHaveLength(5);
    expect(listed[0]).toContain(odd());
    expect(listed[0]).toMatch(/% above the next\)$/);
    expect(trained.stderr).toContain('one good image sets the fpr0 threshold');
    expect(trained.stderr).toContain(`kensa threshold --model MODEL --exclude ${odd()}`);
  });

  it('--exclude of the first image lowers fpr0 without re-training; --include takes it back', async () => {
    const model = join(dir, 'm.kensa');
    const before = await loadModel(model);
    const tensors = Buffer.from(tensorBytes(model));
    const shown = run('threshold', '--model', model);
    expect(shown.status).toBe(0);
    expect(shown.stdout).toMatch(/^fpr0 +[\d.]+ {3}<- kensa predict uses this by default$/m);
    const lines = shown.stdout.split('\n');
    const first = lines.findIndex((l) => l.includes('the first setting fpr0'));
    expect(lines[first + 1]).toContain(odd());

    // the image named as the user sees it: a relative path from another folder works too
    const cut = run('threshold', '--model', model, '--exclude', 'train/good/odd.png');
    expect(cut.status, cut.stderr).toBe(0);
    expect(cut.stdout).toContain(`left out 1 calibration image in ${model} (only its header was rewritten)`);
    const after = await loadModel(model);
    expect(after.meta.thresholds.fpr0).toBeLessThan(before.meta.thresholds.fpr0);
    const kept = Array.from(before.calibrationScores).sort((a, b) => b - a);
    expect(after.meta.thresholds.fpr0).toBeCloseTo(kept[1], 5);
    expect(after.meta.calibration.excluded).toEqual([
      { index: expect.any(Number), at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
    ]);
    expect(after.meta.calibration.images![after.meta.calibration.excluded![0].index].file).toBe(odd());
    expect(tensorBytes(model).equals(tensors)).toBe(true);
    expect(run('threshold', '--model', model).stdout).toContain(`${odd()}  (left out with --exclude)`);
    // predict uses the new fpr0 at once
    const p = run(
      'predict',
      '--model',
      model,
      '--out',
      join(dir, 'p'),
      '--no-overlays',
      join(data, 'test', 'good'),
    );
    expect(p.stdout).toContain(`(threshold ${after.meta.thresholds.fpr0.toFixed(3)})`);

    // a moved copy of the image is recognised by its content
    const moved = join(dir, 'moved.png');
    copyFileSync(odd(), moved);
    expect(run('threshold', '--model', model, '--include', moved).status).toBe(0);
    expect((await loadModel(model)).meta.thresholds).toEqual(before.meta.thresholds);
    expect((await loadModel(model)).meta.calibration.excluded).toBeUndefined();
  });

  it('--set and --unset a custom threshold; bad names are refused, saying why', async () => {
    const model = join(dir, 'm.kensa');
    expect(run('threshold', '--model', model, '--set', '7.5').stdout).toMatch(
      /^custom +7\.5 {3}<- kensa predict uses this by default$/m,
    );
    const unset = run('threshold', '--model', model, '--unset');
    expect(unset.stdout).toContain('removed the custom threshold');
    expect((await loadModel(model)).meta.thresholds.custom).toBeUndefined();
    const none = run('threshold', '--model', model, '--exclude', join(dir, 'nowhere.png'));
    expect(none.status).toBe(2);
    expect(none.stderr).toContain("nowhere.png: not one of the model's 17 calibration images");
    const both = run('threshold', '--model', model, '--set', '3', '--unset');
    expect(both.status).toBe(2);
    expect(both.stderr).toContain('use either --set or --unset');
  });

  it('kensa test says what fpr0 and f1 catch; with one class it stores no f1 threshold', () => {
    const model = join(dir, 'm.kensa');
    const r = run('test', '--model', model, '--data', data, '--out', join(dir, 't'), '--no-figures');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /on this test set fpr0 finds \d+ of the 8 defective images \([\d.]+ %\), with \d+ false alarms? on the 4 good images/,
    );
    expect(r.stdout).toMatch(/f1 \([\d.]+, best F1 here\) would find \d+ of the 8 defective images/);
    // a test set with no good image: AP and F1 undefined, and no f1 threshold stored from it
    const onlyNg = join(dir, 'only-ng');
    mkdirSync(join(onlyNg, 'test'), { recursive: true });
    renameSync(join(data, 'test', 'dust'), join(onlyNg, 'test', 'dust'));
    const refused = run('test', '--model', model, '--data', onlyNg, '--out', join(dir, 't2'), '--save-model');
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('this test set has no good image');
    const plain = run('test', '--model', model, '--data', onlyNg, '--out', join(dir, 't3'), '--no-figures');
    expect(plain.status).toBe(0);
    const metrics = JSON.parse(readFileSync(join(dir, 't3', 'metrics.json'), 'utf8'));
    expect([metrics.image_ap, metrics.image_f1_max, metrics.thresholds.f1]).toEqual([null, null, null]);
    expect(metrics.undefined_reasons.image_f1_max).toBe('no good images (or pixels) to measure');
    renameSync(join(onlyNg, 'test', 'dust'), join(data, 'test', 'dust'));
    rmSync(onlyNg, { recursive: true });
  });

  it('a model from before kensa kept its calibration images says so for --exclude', () => {
    const { tensors, metadata } = parseSafetensors(readFileSync(join(dir, 'm.kensa')));
    const { images: _gone, ...calibration } = JSON.parse(metadata.kensa).calibration;
    const older = join(dir, 'older.kensa');
    writeFileSync(
      older,
      serializeSafetensors([...tensors], {
        ...metadata,
        kensa: JSON.stringify({ ...JSON.parse(metadata.kensa), calibration }),
      }),
    );
    const r = run('threshold', '--model', older, '--exclude', odd());
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      `${older}: this model does not record its calibration images (it was trained by an older kensa); train it again to leave images out`,
    );
    // it still lists its thresholds and scores, without names
    const shown = run('threshold', '--model', older);
    expect(shown.status).toBe(0);
    expect(shown.stdout).toMatch(/calibration image \d+/);
  });
});
