/**
 * The reliability second pass: operator mistakes and ordinary file-system facts, through the command
 * line. Each case failed before its fix (docs/RELIABILITY.md lists them).
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { describeIoError } from '../../src/io/atomic.js';

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
const dir = mkdtempSync(join(tmpdir(), 'kensa-second-pass-'));
const data = join(dir, 'data');
const model = join(dir, 'm.kensa');
const good = () => join(data, 'test', 'good', '000.png');

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 64, train: 12, testGood: 3, testPerDefect: 3, seed: 5 });
  const r = run('train', '--method', 'padim', '--data', data, '--out', model, '--size', '64', '--d', '8');
  if (r.status !== 0) throw new Error(r.stderr);
});

describe('operator mistakes and file-system facts', () => {
  it('1. long output names (nested folders, 240 bytes, 80 Japanese characters) cost no image its results', () => {
    const inbox = join(dir, 'long');
    const nested = join(inbox, ...Array.from({ length: 12 }, (_, i) => `sub-folder-${i}`));
    mkdirSync(nested, { recursive: true });
    const names = [
      join(inbox, `${'a'.repeat(236)}.png`),
      join(inbox, `${'検'.repeat(80)}.png`),
      join(nested, `${'b'.repeat(200)}.png`),
    ];
    for (const n of names) copyFileSync(good(), n);
    const out = join(dir, 'long-out');
    const r = run('predict', '--model', model, '--out', out, '--figures', inbox);
    expect(r.stderr).not.toMatch(/error|ENAMETOOLONG/i);
    expect(r.status).toBe(0);
    const json = JSON.parse(readFileSync(join(out, 'predictions.json'), 'utf8'));
    expect(json.predictions.map((p: { file: string }) => p.file).sort()).toEqual([...names].sort());
    expect(readdirSync(join(out, 'overlays'))).toHaveLength(3);
    expect(readdirSync(join(out, 'figures'))).toHaveLength(3);
  });

  it('3. symbolic links are followed, WebP/AVIF read, a broken link listed in errors.csv', async () => {
    const inbox = join(dir, 'links');
    mkdirSync(inbox);
    symlinkSync(good(), join(inbox, 'linked.png'));
    await sharp(good()).webp().toFile(join(inbox, 'w.webp'));
    await sharp(good()).avif().toFile(join(inbox, 'a.avif'));
    symlinkSync(join(dir, 'nowhere.png'), join(inbox, 'broken.png'));
    const out = join(dir, 'links-out');
    const r = run('predict', '--model', model, '--out', out, inbox);
    expect(r.status).toBe(3);
    const json = JSON.parse(readFileSync(join(out, 'predictions.json'), 'utf8'));
    expect(json.predictions.map((p: { file: string }) => p.file)).toEqual(
      ['a.avif', 'linked.png', 'w.webp'].map((n) => join(inbox, n)),
    );
    expect(readFileSync(join(out, 'errors.csv'), 'utf8')).toContain(
      `${join(inbox, 'broken.png')},the link points to nothing (a broken symbolic link)`,
    );
  });

  it('4. --out inside the input folder: the next run never inspects its own pictures (and says so once)', () => {
    const inbox = join(dir, 'inbox');
    mkdirSync(inbox);
    copyFileSync(good(), join(inbox, 'p.png'));
    for (const out of ['results', 'results-2']) {
      const r = run('predict', '--model', model, '--out', join(inbox, out), inbox);
      expect(r.status).toBe(0);
      expect(JSON.parse(readFileSync(join(inbox, out, 'predictions.json'), 'utf8')).predictions).toHaveLength(
        1,
      );
    }
    const again = run('predict', '--model', model, '--out', join(inbox, 'results'), inbox);
    expect(again.stderr.match(/this is a kensa results folder, not input/g)).toHaveLength(2);
  });

  it.each([
    [['predict', '--batch', '0'], "Expected an integer between 1 and 4096 for --batch but received '0'"],
    [['predict', '--batch', '-3'], "Expected an integer between 1 and 4096 for --batch but received '-3'"],
    [
      ['predict', '--pixel-limit', '0'],
      "Expected an integer between 1 and 4294967296 for --pixel-limit but received '0'",
    ],
    [
      ['predict', '--pixel-limit', '1e20'],
      "Expected an integer between 1 and 4294967296 for --pixel-limit but received '1e20'",
    ],
    [['predict', '--threshold', '0'], "for --threshold but received '0'"],
    [['predict', '--threshold', '1e-320'], "for --threshold but received '1e-320'"],
    [['threshold', '--set', '-1'], "Expected a number of at least 0.000001 for --set but received '-1'"],
    [['train', '--resize', '100', '--crop', '224'], 'Expected crop (224) no larger than resize (100)'],
    [['train', '--size', '100'], 'Expected a multiple of 16 for size but received 100'],
    [
      ['train', '--tile', '64', '--overlap', '64'],
      'Expected an integer between 0 and 48 for overlap but received 64',
    ],
    [['train', '--method', 'padim', '--square', '--size', '8192'], 'of memory'],
    // the default (the ensemble) names the method that needs less
    [['train', '--square', '--size', '4096'], '--method patchcore needs less'],
    [['train', '--coreset', '0'], "Expected a number in (0, 1] for --coreset but received '0'"],
    [['train', '--method', 'padim', '--coreset', '0.1'], '--coreset applies to --method patchcore only'],
    [['train', '--neighbors', '0'], "Expected an integer between 1 and 64 for --neighbors but received '0'"],
    [['train', '--method', 'padim', '--neighbors', '1'], '--neighbors applies to --method patchcore only'],
  ])('5. %j is a usage error before any work (exit 2)', (args, message) => {
    const verb = args[0];
    const common =
      verb === 'predict'
        ? ['--model', model, '--out', join(dir, 'never'), good()]
        : verb === 'threshold'
          ? ['--model', model]
          : ['--data', data, '--out', join(dir, 'never.kensa')];
    const started = performance.now();
    const r = run(...args, ...common);
    expect(r.stderr).toContain(message);
    expect(r.status).toBe(2);
    expect(existsSync(join(dir, 'never')) || existsSync(join(dir, 'never.kensa'))).toBe(false);
    expect(performance.now() - started).toBeLessThan(20_000);
  });

  it('6. unwritable outputs are refused before the work, with the path and the cause (exit 1)', () => {
    mkdirSync(join(dir, 'a-folder.kensa'));
    const folder = run(
      'train',
      '--method',
      'padim',
      '--data',
      data,
      '--out',
      join(dir, 'a-folder.kensa'),
      '--size',
      '64',
      '--d',
      '8',
    );
    expect(folder.status).toBe(1);
    expect(folder.stderr).toContain(
      `${join(dir, 'a-folder.kensa')}: cannot write: this is an existing folder; give a file name`,
    );
    expect(folder.stderr).not.toContain('train (padim)');
    writeFileSync(join(dir, 'a-file'), '');
    const under = run('predict', '--model', model, '--out', join(dir, 'a-file', 'results'), good());
    expect(under.status).toBe(1);
    expect(under.stderr).toContain('a part of the path is a file, not a folder');
    expect(under.stderr).not.toContain('unexpected error');
    expect(describeIoError({ code: 'ENOSPC' })).toBe(
      'the disk is full (or the quota is used up); free some space or write elsewhere',
    );
    expect(describeIoError({ code: 'EACCES' })).toBe(
      'permission denied; choose a folder you may write to, or change its permissions',
    );
  });

  it('10. SIGHUP during a run leaves no temporary file; a 1×1 image gets a 1×1 box inside it; a line break in a name stays one line', async () => {
    const out = join(dir, 'hup.kensa');
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
    // once the run has started its work (its memory plan is said), not while node is still loading
    await new Promise<void>((r) => {
      let said = '';
      child.stderr.on('data', (d) => {
        said += d;
        if (said.includes('memory:')) r();
      });
      child.on('exit', () => r());
    });
    child.kill('SIGHUP');
    const exit = await code;
    if (exit !== 0) {
      expect(exit).toBe(129);
      expect(existsSync(out)).toBe(false);
    }
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const tiny = join(dir, 'tiny');
    mkdirSync(tiny);
    await sharp({ create: { width: 1, height: 1, channels: 3, background: { r: 250, g: 0, b: 0 } } })
      .png()
      .toFile(join(tiny, 'one.png'));
    copyFileSync(good(), join(tiny, 'line\nbreak.png'));
    const r = run(
      'predict',
      '--model',
      model,
      '--out',
      join(dir, 'tiny-out'),
      '--threshold',
      '0.000001',
      tiny,
    );
    expect(r.status).toBe(0);
    const json = JSON.parse(readFileSync(join(dir, 'tiny-out', 'predictions.json'), 'utf8'));
    const one = json.predictions.find((p: { file: string }) => p.file.endsWith('one.png'));
    expect(one.verdict).toBe('NG');
    expect(one.regions).toEqual([expect.objectContaining({ x: 0, y: 0, width: 1, height: 1 })]);
    const lines = readFileSync(join(dir, 'tiny-out', 'ng_list.txt'), 'utf8')
      .trim()
      .split('\n');
    expect(lines).toContain(JSON.stringify(join(tiny, 'line\nbreak.png')));
  });

  it('11. a second writer to the same results folder is refused, naming the other process; a stale lock is taken over', () => {
    const out = join(dir, 'locked');
    mkdirSync(out);
    writeFileSync(join(out, '.kensa.lock'), `${process.pid}\nkensa predict --out ${out}\n`);
    const r = run('predict', '--model', model, '--out', out, good());
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${out}: another kensa run is writing to this folder (process ${process.pid}`);
    writeFileSync(join(out, '.kensa.lock'), '999999999\nkensa predict\n');
    expect(run('predict', '--model', model, '--out', out, good()).status).toBe(0);
    expect(existsSync(join(out, '.kensa.lock'))).toBe(false);
  });
});
