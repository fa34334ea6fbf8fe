/**
 * kensa watch on a drop folder: every image that appears is inspected once, when its file is complete (a
 * file written in two halves is scored whole; a temporary name is left until renamed into place); the
 * results are appended with the columns of every run; a restart neither inspects a file twice nor misses
 * one, and repairs results cut short by a crash; --move-to sorts the images into OK and NG folders.
 */
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../../src/data/synthetic.js';
import { PREDICTIONS_HEADER } from '../../../src/pipeline/engine/run.js';
import { predict } from '../../../src/pipeline/verbs/predict.js';
import { train } from '../../../src/pipeline/verbs/train.js';
import { watch, WATCH_JOURNAL, type WatchOptions } from '../../../src/pipeline/verbs/watch.js';
import type { Prediction } from '../../../src/pipeline/engine/run.js';

const dir = mkdtempSync(join(tmpdir(), 'kensa-watch-'));
const data = join(dir, 'data');
const model = join(dir, 'm.kensa');
const test = (...p: string[]) => join(data, 'test', ...p);
let expected: Map<string, number>;

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 64, train: 10, testGood: 3, testPerDefect: 2, seed: 13 });
  await train({ data, method: 'padim', out: model, preprocess: { mode: 'fit', size: 64 }, d: 8 });
  const r = await predict({ model, inputs: [test()], out: join(dir, 'predicted'), overlays: false });
  expected = new Map(r.predictions.map((p) => [p.file.split('/').slice(-2).join('/'), p.score]));
});

/** Runs a watch until `until` says so (or 20 s), collecting what it inspected. */
async function watching(
  options: Omit<WatchOptions, 'model' | 'signal'>,
  during: (seen: Prediction[]) => Promise<void>,
  until: (seen: Prediction[]) => boolean,
) {
  const stop = new AbortController();
  const seen: Prediction[] = [];
  const running = watch({
    model,
    intervalMs: 50,
    settleMs: 300,
    ...options,
    signal: stop.signal,
    onImage: (p) => seen.push(p),
  });
  await during(seen);
  const t0 = Date.now();
  while (!until(seen) && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 50));
  stop.abort();
  return { summary: await running, seen };
}

const rows = (out: string) => readFileSync(join(out, 'predictions.csv'), 'utf8').trim().split('\n');

describe('kensa watch', () => {
  it('inspects each new image once, whole, and appends the results; a restart goes on where it stopped', async () => {
    const drop = join(dir, 'drop');
    const out = join(dir, 'watch-out');
    mkdirSync(join(drop, 'line2'), { recursive: true });
    const first = await watching(
      { folder: drop, out },
      async () => {
        copyFileSync(test('good', '000.png'), join(drop, 'a.png'));
        copyFileSync(test('dust', '000.png'), join(drop, 'line2', 'b.png'));
        // a camera writing a file in two halves, 150 ms apart: scored once, whole
        const bytes = readFileSync(test('dust', '001.png'));
        writeFileSync(join(drop, 'c.png'), bytes.subarray(0, bytes.length >> 1));
        await new Promise((r) => setTimeout(r, 150));
        writeFileSync(join(drop, 'c.png'), bytes);
        // a file written under a temporary name, then renamed into place
        copyFileSync(test('good', '001.png'), join(drop, 'd.png.part'));
        await new Promise((r) => setTimeout(r, 400));
        renameSync(join(drop, 'd.png.part'), join(drop, 'd.png'));
      },
      (seen) => seen.length >= 4,
    );
    expect(first.summary).toEqual({
      inspected: 4,
      ng: first.seen.filter((p) => p.verdict === 'NG').length,
      errors: 0,
    });
    const score = (p: Prediction) => p.score;
    const byName = new Map(first.seen.map((p) => [p.file.split('/').pop(), p]));
    expect(score(byName.get('a.png')!)).toBeCloseTo(expected.get('good/000.png')!, 5);
    expect(score(byName.get('b.png')!)).toBeCloseTo(expected.get('dust/000.png')!, 5);
    expect(score(byName.get('c.png')!)).toBeCloseTo(expected.get('dust/001.png')!, 5);
    expect(score(byName.get('d.png')!)).toBeCloseTo(expected.get('good/001.png')!, 5);
    expect(rows(out)[0]).toBe(PREDICTIONS_HEADER.join(','));
    expect(rows(out)).toHaveLength(5);
    expect(readdirSync(join(out, 'overlays')).sort()).toEqual(['a.png', 'c.png', 'd.png', 'line2_b.png']);

    // a crash between two appends: a journal line cut short, a stray CSV row
    writeFileSync(
      join(out, WATCH_JOURNAL),
      readFileSync(join(out, WATCH_JOURNAL), 'utf8') + '{"key":"x.png\t1',
    );
    writeFileSync(
      join(out, 'predictions.csv'),
      readFileSync(join(out, 'predictions.csv'), 'utf8') + 'stray,row\n',
    );
    // restarted: nothing inspected again; a new image is
    const second = await watching(
      { folder: drop, out },
      async () => {
        await new Promise((r) => setTimeout(r, 500));
        copyFileSync(test('good', '002.png'), join(drop, 'e.png'));
      },
      (seen) => seen.length >= 1,
    );
    expect(second.seen.map((p) => p.file.split('/').pop())).toEqual(['e.png']);
    expect(rows(out)).toHaveLength(6);
    expect(rows(out).some((r) => r.startsWith('stray'))).toBe(false);
  });

  it('--move-to sorts the inspected images into OK and NG folders', async () => {
    const drop = join(dir, 'drop2');
    mkdirSync(drop);
    const ok = join(dir, 'sorted', 'OK');
    const ng = join(dir, 'sorted', 'NG');
    const { seen } = await watching(
      { folder: drop, out: join(dir, 'watch-out2'), moveTo: { ok, ng }, overlays: false },
      async () => {
        copyFileSync(test('good', '000.png'), join(drop, 'g.png'));
        copyFileSync(test('dust', '000.png'), join(drop, 'n.png'));
      },
      (s) => s.length >= 2,
    );
    expect(readdirSync(drop)).toEqual([]);
    for (const p of seen) {
      const name = p.file.split('/').pop()!;
      expect(readdirSync(p.verdict === 'NG' ? ng : ok)).toContain(name);
    }
  });
});
