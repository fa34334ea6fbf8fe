/**
 * Bad input through the command line: predict goes on past unreadable files (errors.csv, exit code 3),
 * --fail-fast stops at the first; empty and missing folders, only-good and only-defective test sets,
 * an interrupted train leaves no model file and the same command then completes.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
const dir = mkdtempSync(join(tmpdir(), 'kensa-reliability-'));
const data = join(dir, 'data');
const model = join(dir, 'm.kensa');

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 64, train: 12, testGood: 3, testPerDefect: 3, seed: 5 });
  const r = run('train', '--method', 'padim', '--data', data, '--out', model, '--size', '64', '--d', '8');
  if (r.status !== 0) throw new Error(r.stderr);
});

describe('bad input from the command line', () => {
  it('predict lists unreadable files in errors.csv, scores the rest, and exits with 3', () => {
    const inbox = join(dir, 'inbox');
    mkdirSync(inbox);
    copyFileSync(join(data, 'test', 'good', '000.png'), join(inbox, 'a-good.png'));
    writeFileSync(join(inbox, 'b-empty.png'), '');
    writeFileSync(join(inbox, 'c-notes.jpg'), 'not a picture');
    writeFileSync(
      join(inbox, 'd-half.png'),
      readFileSync(join(data, 'test', 'dust', '000.png')).subarray(0, 200),
    );
    const out = join(dir, 'pred');
    const r = run('predict', '--model', model, '--out', out, inbox);
    expect(r.status).toBe(3);
    expect(r.stderr).toContain('3 images could not be read');
    const errors = readFileSync(join(out, 'errors.csv'), 'utf8').trim().split('\n');
    expect(errors).toHaveLength(4);
    expect(errors.slice(1).map((l) => l.split(',')[0])).toEqual(
      ['b-empty.png', 'c-notes.jpg', 'd-half.png'].map((n) => join(inbox, n)),
    );
    const json = JSON.parse(readFileSync(join(out, 'predictions.json'), 'utf8'));
    expect(json.predictions.map((p: { file: string }) => p.file)).toEqual([join(inbox, 'a-good.png')]);

    const ff = run('predict', '--model', model, '--out', join(dir, 'pred-ff'), '--fail-fast', inbox);
    expect(ff.status).toBe(1);
    expect(ff.stderr).toContain(`${join(inbox, 'b-empty.png')}: cannot decode the image`);
  });

  it('empty and missing folders are errors that name them', () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(run('predict', '--model', model, '--out', join(dir, 'x'), empty).stderr).toContain(
      `${empty}: the folder holds no images`,
    );
    expect(run('train', '--data', join(dir, 'nope'), '--out', join(dir, 'y.kensa')).stderr).toContain(
      `${join(dir, 'nope')}: the data folder does not exist`,
    );
    expect(run('train', '--data', empty, '--out', join(dir, 'y.kensa')).stderr).toContain(
      'no training images found',
    );
    expect(existsSync(join(dir, 'y.kensa'))).toBe(false);
  });

  it('a test set with only good images: image metrics are null with a reason, never NaN', () => {
    const only = join(dir, 'only-good');
    mkdirSync(join(only, 'test', 'good'), { recursive: true });
    for (const f of readdirSync(join(data, 'test', 'good')))
      copyFileSync(join(data, 'test', 'good', f), join(only, 'test', 'good', f));
    const r = run('test', '--model', model, '--data', only, '--out', join(dir, 'only-out'), '--no-figures');
    expect(r.status).toBe(0);
    const text = readFileSync(join(dir, 'only-out', 'metrics.json'), 'utf8');
    expect(text).not.toContain('NaN');
    const m = JSON.parse(text);
    expect(m.image_auroc).toBeNull();
    expect(m.undefined_reasons.image_auroc).toBe('no defective images (or pixels) to measure');
    expect(m.confusion.fpr0.fp + m.confusion.fpr0.tn).toBe(3);
  });

  it('SIGKILL during predict leaves each results file absent or complete; the same command then completes', async () => {
    const out = join(dir, 'killed');
    const args = [BIN, 'predict', '--model', model, '--out', out, '--figures', join(data, 'test')];
    const child = spawn(process.execPath, args);
    const exited = new Promise((r) => child.on('exit', r));
    await new Promise((r) => setTimeout(r, 1200));
    child.kill('SIGKILL');
    await exited;
    for (const f of ['predictions.csv', 'predictions.json', 'ng_list.txt', 'results.json']) {
      if (existsSync(join(out, f)) && f.endsWith('.json'))
        expect(() => JSON.parse(readFileSync(join(out, f), 'utf8'))).not.toThrow();
    }
    expect(run(...args.slice(1)).status).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'predictions.json'), 'utf8')).predictions).toHaveLength(9);
  });

  it('an interrupted train leaves no model file; running it again completes it', async () => {
    const out = join(dir, 'interrupted.kensa');
    const child = spawn(process.execPath, [
      BIN,
      'train',
      '--method',
      'padim',
      '--data',
      data,
      '--out',
      out,
      '--size',
      '64',
      '--d',
      '8',
    ]);
    const code = new Promise((r) => child.on('exit', (c, s) => r(c ?? s)));
    await new Promise((r) => setTimeout(r, 700));
    child.kill('SIGINT');
    if ((await code) !== 0) {
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    }
    expect(
      run('train', '--method', 'padim', '--data', data, '--out', out, '--size', '64', '--d', '8').status,
    ).toBe(0);
    expect(readFileSync(out).equals(readFileSync(model))).toBe(true);
    rmSync(out);
  });
});
