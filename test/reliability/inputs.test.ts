/**
 * No image left out without a word, through the command line: predict (and classify predict) inspect
 * every image under a folder whatever its sub-folders are called; train and test take the images of
 * sub-folders; exact copies among the training images are found and said; a file that is not a raster
 * photograph (SVG) is listed in errors.csv; an output folder kensa may not create is refused with the
 * real cause (a read-only file system), never "the folder does not exist", and never a hang; the memory
 * plan counts what decoding the images takes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { getMethod } from '../../src/models/registry.js';
import { checkScoring } from '../../src/pipeline/engine/memory.js';
import { loadModel } from '../../src/pipeline/contracts/model-file.js';

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const run = (...args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
const dir = mkdtempSync(join(tmpdir(), 'kensa-inputs-'));
const data = join(dir, 'data');
const model = join(dir, 'm.kensa');
const picture = (type: string, i = 0) => join(data, 'test', type, `${String(i).padStart(3, '0')}.png`);
const predictedFiles = (out: string) =>
  (JSON.parse(readFileSync(join(out, 'predictions.json'), 'utf8')).predictions as { file: string }[])
    .map((p) => p.file)
    .sort();

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 64, train: 10, testGood: 3, testPerDefect: 3, seed: 12 });
  const r = run('train', '--data', data, '--out', model, '--size', '64', '--square');
  if (r.status !== 0) throw new Error(r.stderr);
});

describe('inputs: no image silently skipped', () => {
  it('predict inspects every image of a folder that holds a test/ sub-folder (and the classifier too)', () => {
    const shift = join(dir, 'shift');
    const files = [
      ['test', '2024-06-01', 'p1.png'],
      ['line2', 'r01.png'],
      ['line2', 'r02.png'],
      ['line2', 'night', 'r03.png'],
      ['p9.png'],
    ].map((p) => join(shift, ...p));
    files.forEach((f, i) => {
      mkdirSync(join(f, '..'), { recursive: true });
      copyFileSync(i % 2 ? picture('dust', i % 3) : picture('good', i % 3), f);
    });
    const out = join(dir, 'shift-out');
    const r = run('predict', '--model', model, '--out', out, shift);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('5 images:');
    expect(predictedFiles(out)).toEqual([...files].sort());
    // the classifier's predict walks the same way
    const cdata = join(dir, 'cdata');
    mkdirSync(join(cdata, 'train', 'good'), { recursive: true });
    mkdirSync(join(cdata, 'train', 'dust'), { recursive: true });
    for (let i = 0; i < 6; i++)
      copyFileSync(
        join(data, 'train', 'good', `${String(i).padStart(3, '0')}.png`),
        join(cdata, 'train', 'good', `${i}.png`),
      );
    for (let i = 0; i < 3; i++) copyFileSync(picture('dust', i), join(cdata, 'train', 'dust', `${i}.png`));
    const classifier = join(dir, 'c.classifier');
    const t = run(
      'classify',
      'train',
      '--data',
      cdata,
      '--out',
      classifier,
      '--size',
      '64',
      '--head',
      'image',
      '--copies',
      '0',
    );
    expect(t.status, t.stderr).toBe(0);
    const cout = join(dir, 'shift-classify');
    const c = run('classify', 'predict', '--model', classifier, '--out', cout, shift);
    expect(c.status, c.stderr).toBe(0);
    expect(predictedFiles(cout)).toEqual([...files].sort());
  });

  it('train and test take sub-folders: train/good/older and test/dust/batch2 (with its masks)', () => {
    const deep = join(dir, 'deep');
    execFileSync('cp', ['-r', data, deep]);
    mkdirSync(join(deep, 'train', 'good', 'older'));
    for (const f of ['000.png', '001.png', '002.png'])
      copyFileSync(join(deep, 'train', 'good', f), join(deep, 'train', 'good', 'older', `o${f}`));
    mkdirSync(join(deep, 'test', 'dust', 'batch2'));
    mkdirSync(join(deep, 'ground_truth', 'dust', 'batch2'));
    copyFileSync(picture('dust', 1), join(deep, 'test', 'dust', 'batch2', 'b1.png'));
    copyFileSync(
      join(data, 'ground_truth', 'dust', '001_mask.png'),
      join(deep, 'ground_truth', 'dust', 'batch2', 'b1_mask.png'),
    );
    const m = join(dir, 'deep.kensa');
    const t = run('train', '--data', deep, '--out', m, '--size', '64', '--square');
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toContain('fitted on 13 good images');
    // the copies in older/ are exact copies of their originals: said, with the pairs
    expect(t.stderr).toContain('3 training images are exact copies of another (the same bytes)');
    expect(t.stderr).toContain(
      `${join(deep, 'train', 'good', 'older', 'o000.png')} = ${join(deep, 'train', 'good', '000.png')}`,
    );
    const out = join(dir, 'deep-test');
    const r = run('test', '--model', m, '--data', deep, '--out', out, '--no-figures');
    expect(r.status, r.stderr).toBe(0);
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    expect(metrics.counts.by_category.dust).toBe(4);
    expect(metrics.counts.with_mask).toBe(metrics.counts.defective);
  });

  it('a file that is not a raster photograph (an SVG with a script) is an error of its own, the others scored', () => {
    const inbox = join(dir, 'svg-inbox');
    mkdirSync(inbox);
    copyFileSync(picture('good'), join(inbox, 'a.png'));
    writeFileSync(
      join(inbox, 'b.png'),
      '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><script>alert(1)</script></svg>',
    );
    const out = join(dir, 'svg-out');
    const r = run('predict', '--model', model, '--out', out, inbox);
    expect(r.status).toBe(3);
    expect(predictedFiles(out)).toEqual([join(inbox, 'a.png')]);
    expect(readFileSync(join(out, 'errors.csv'), 'utf8')).toContain(
      `${join(inbox, 'b.png')}: this is an SVG drawing, not a raster photograph`,
    );
  });
});

describe('the memory plan', () => {
  it("counts the decoder's buffers: an interlaced 16-bit RGBA image plans its decoding, a plain one less", async () => {
    const m = await loadModel(model);
    const method = getMethod(m.meta.method);
    const make = async (name: string, wide: boolean) => {
      const file = join(dir, name);
      let img = sharp({
        create: { width: 2000, height: 2000, channels: wide ? 4 : 3, background: '#808080' },
      });
      if (wide) img = img.toColourspace('rgb16');
      await img.png({ progressive: wide, compressionLevel: 1 }).toFile(file);
      return { path: file };
    };
    const limit = 20_000_000;
    const plain = await checkScoring(
      method,
      m.state,
      m.meta.preprocess,
      32,
      [await make('plain.png', false)],
      limit,
    );
    const wide = await checkScoring(
      method,
      m.state,
      m.meta.preprocess,
      32,
      [await make('wide.png', true)],
      limit,
    );
    // 2000×2000 × 4 channels × 2 bytes × 2 (interlaced) = 64 MB a decode, two at a time; plain: 12 MB
    expect(wide.peak - plain.peak).toBeCloseTo(2 * (64e6 - 12e6), -5);
  });
});

describe('outputs kensa may not create', () => {
  const mounted = join(dir, 'read-only');
  let readOnly = false;
  beforeAll(() => {
    // a read-only file system where this machine lets the test make one (root, as in CI)
    mkdirSync(mounted);
    readOnly = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', mounted]).status === 0;
  });
  afterAll(() => {
    if (readOnly) spawnSync('umount', [mounted]);
  });

  it('a folder in a virtual file system (/proc) is refused at once with the cause, not waited on forever', () => {
    const started = performance.now();
    const r = run('predict', '--model', model, '--out', '/proc/kensa-results', picture('good'));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('/proc/kensa-results: cannot write: this folder cannot be created here');
    expect(performance.now() - started).toBeLessThan(30_000);
  });

  it('a read-only file system: "read-only", never "the folder does not exist"', (context) => {
    if (!readOnly) {
      console.log('skipped: this machine does not let the test mount a read-only file system');
      context.skip();
    }
    for (const args of [
      ['predict', '--model', model, '--out', join(mounted, 'results', 'today'), picture('good')],
      ['train', '--data', data, '--out', join(mounted, 'models', 'm.kensa'), '--size', '64'],
    ]) {
      const r = run(...args);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('the file system is read-only; write elsewhere');
      expect(r.stderr).not.toContain('does not exist');
    }
    expect(readdirSync(mounted)).toEqual([]);
    expect(existsSync(join(mounted, 'results'))).toBe(false);
  });
});
