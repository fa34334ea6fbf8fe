/**
 * kensa update: new good images added to a fitted model. PaDiM's statistics must equal a fit on all the
 * images; PatchCore's bank must keep every row and only gain (so no patch scores higher); the calibration
 * keeps the stored scores and adds the new images' own; the file is replaced with the old one kept, and
 * what cannot be added is refused with the file named.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EnsembleState } from '../../../src/models/ensemble/method.js';
import { makeSyntheticDataset } from '../../../src/data/synthetic.js';
import { readImageList } from '../../../src/data/dataset.js';
import type { PadimState } from '../../../src/models/padim/model.js';
import type { PatchcoreState } from '../../../src/models/patchcore/model.js';
import { METHODS } from '../../../src/models/registry.js';
import { loadModel } from '../../../src/pipeline/contracts/model-file.js';
import { Inspector } from '../../../src/pipeline/engine/inspector.js';
import { trainClassifier } from '../../../src/pipeline/verbs/classify.js';
import { train } from '../../../src/pipeline/verbs/train.js';
import { previousModelPath, update } from '../../../src/pipeline/verbs/update.js';
import { relativeMaxError } from '../../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kensa-update-'));
const data = join(dir, 'data');
const base = join(dir, 'base');
const fresh = join(dir, 'new');
const SIZE = 64;
const preprocess = { mode: 'fit', size: SIZE } as const;

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: SIZE, train: 16, testGood: 3, testPerDefect: 2, seed: 21 });
  mkdirSync(join(base, 'train', 'good'), { recursive: true });
  mkdirSync(fresh);
  readdirSync(join(data, 'train', 'good'))
    .sort()
    .forEach((f, i) =>
      copyFileSync(join(data, 'train', 'good', f), i < 12 ? join(base, 'train', 'good', f) : join(fresh, f)),
    );
});

/** Every test image's map and score under a model. */
async function scoresOf(model: string): Promise<{ maps: Float32Array[]; scores: number[] }> {
  const inspector = await Inspector.open(await loadModel(model));
  const maps: Float32Array[] = [];
  const scores: number[] = [];
  try {
    const items = ['good', 'dust', 'scratch'].flatMap((t) =>
      readdirSync(join(data, 'test', t)).map((f) => ({ path: join(data, 'test', t, f) })),
    );
    for await (const r of inspector.score(items)) {
      maps.push(r.map.slice());
      scores.push(r.score);
    }
  } finally {
    await inspector.dispose();
  }
  return { maps, scores };
}

const unsupervised = METHODS.filter((m) => m.learning === 'unsupervised');

it('every method fitted on good images can be updated', () => {
  expect(unsupervised.map((m) => m.name).sort()).toEqual(['ensemble', 'padim', 'patchcore']);
  for (const m of unsupervised) expect(m.resume, m.name).toBeTypeOf('function');
});

describe.each(unsupervised.map((m) => [m.name] as const))(
  '%s: update',
  (method) => {
    const before = join(dir, `${method}-base.kensa`);
    const after = join(dir, `${method}-updated.kensa`);
    const union = join(dir, `${method}-union.kensa`);
    // PaDiM with fewer channels than images, so that its covariances are well determined
    const d = method === 'padim' ? 8 : undefined;

    beforeAll(async () => {
      await train({ data: base, method, out: before, preprocess, d });
      await update({ model: before, add: fresh, out: after });
      await train({ data, method, out: union, preprocess, d });
    });

    it('keeps the stored calibration and adds each new image with its own score', async () => {
      const b = await loadModel(before);
      const u = await loadModel(after);
      expect(u.meta.training.train_images).toBe(16);
      expect(u.calibrationScores).toHaveLength(16);
      expect(Array.from(u.calibrationScores.subarray(0, 12))).toEqual(Array.from(b.calibrationScores));
      const files = u.meta.calibration.images!.slice(12).map((im) => im.file);
      expect(files).toEqual(
        readdirSync(fresh)
          .sort()
          .map((f) => join(fresh, f)),
      );
      expect(u.meta.calibration.images!.slice(12).every((im) => /^[0-9a-f]{16}$/.test(im.sha256!))).toBe(
        true,
      );
      expect(u.meta.thresholds.fpr0).toBe(Math.max(...u.calibrationScores));
      expect(u.meta.training.updates).toEqual([
        expect.objectContaining({
          added: 4,
          skipped: 0,
          fpr0_before: b.meta.thresholds.fpr0,
          fpr0_after: u.meta.thresholds.fpr0,
        }),
      ]);
    });

    if (method === 'ensemble')
      it('keeps the weights of its first calibration, so that stored and new scores share one scale', async () => {
        const b = (await loadModel(before)).state as EnsembleState;
        const u = (await loadModel(after)).state as EnsembleState;
        expect(u.scales).toEqual(b.scales);
        expect(u.padim.count).toBe(16);
        expect(u.patchcore.bank.length).toBeGreaterThan(b.patchcore.bank.length);
      });

    if (method === 'padim')
      it('equals a fit on all the images: statistics, scores, and the new images’ leave-one-out scores', async () => {
        const u = await loadModel(after);
        const t = await loadModel(union);
        const [us, ts] = [u.state as PadimState, t.state as PadimState];
        expect(us.count).toBe(16);
        expect(relativeMaxError(us.mean, ts.mean)).toBeLessThan(1e-5);
        expect(relativeMaxError(us.precision, ts.precision)).toBeLessThan(1e-3);
        const a = await scoresOf(after);
        const c = await scoresOf(union);
        expect(relativeMaxError(a.scores, c.scores)).toBeLessThan(1e-4);
        // the union model scored every image leave-one-out: the new ones' scores are the same numbers
        const at = new Map(t.meta.calibration.images!.map((im, i) => [im.file, t.calibrationScores[i]]));
        const expected = readdirSync(fresh)
          .sort()
          .map((f) => at.get(join(data, 'train', 'good', f))!);
        expect(relativeMaxError(u.calibrationScores.subarray(12), expected)).toBeLessThan(1e-4);
      });

    if (method === 'patchcore')
      it('keeps every bank row and adds the coreset share of the new patches: no patch scores higher', async () => {
        const b = (await loadModel(before)).state as PatchcoreState;
        const u = (await loadModel(after)).state as PatchcoreState;
        const M = b.bank.length / b.dim;
        expect(Array.from(u.bank.subarray(0, b.bank.length))).toEqual(Array.from(b.bank));
        const newPatches = u.patches - b.patches;
        expect(newPatches).toBe((b.patches / 12) * 4);
        expect(u.bank.length / u.dim).toBe(M + Math.floor(newPatches * b.coreset));
        const x = await scoresOf(before);
        const y = await scoresOf(after);
        for (let i = 0; i < x.maps.length; i++)
          for (let p = 0; p < x.maps[i].length; p++)
            expect(y.maps[i][p]).toBeLessThanOrEqual(x.maps[i][p] + 1e-4);
        // and the union's scores are of the same size (a bank of the same images, picked in another order)
        const z = await scoresOf(union);
        expect(relativeMaxError(y.scores, z.scores)).toBeLessThan(0.25);
      });
  },
  120_000,
);

describe('update: in place, lists, and refusals', () => {
  const model = join(dir, 'inplace.kensa');

  beforeAll(async () => {
    await train({ data: base, method: 'patchcore', out: model, preprocess });
  });

  it('replaces the model in place and keeps the one it replaced; images it holds already are left out', async () => {
    const old = readFileSync(model);
    const warnings: string[] = [];
    const r = await update({ model, add: fresh, onWarning: (w) => warnings.push(w) });
    expect(r.previous).toBe(previousModelPath(model));
    expect(r.previous).toBe(join(dir, 'inplace.previous.kensa'));
    expect(readFileSync(r.previous!).equals(old)).toBe(true);
    expect((await loadModel(model)).meta.training.train_images).toBe(16);
    // the same images again (a copy under another name too): nothing to add
    const again = join(dir, 'again');
    mkdirSync(again);
    for (const f of readdirSync(fresh)) copyFileSync(join(fresh, f), join(again, `copy-${f}`));
    await expect(update({ model, add: again })).rejects.toThrow(
      `${again}: every image given is in the model already (the same content as its images): nothing to add`,
    );
    // one image in the model already, one new: the new one is added, the other named
    const mixed = join(dir, 'mixed');
    mkdirSync(mixed);
    copyFileSync(join(fresh, readdirSync(fresh)[0]), join(mixed, 'a.png'));
    copyFileSync(
      join(data, 'test', 'good', readdirSync(join(data, 'test', 'good'))[0]),
      join(mixed, 'b.png'),
    );
    const w2: string[] = [];
    const r2 = await update({
      model,
      add: mixed,
      out: join(dir, 'mixed.kensa'),
      onWarning: (w) => w2.push(w),
    });
    expect(r2.added.map((i) => i.path)).toEqual([join(mixed, 'b.png')]);
    expect(r2.alreadyIn).toEqual([join(mixed, 'a.png')]);
    expect(w2.join('\n')).toContain('1 of the images given is in the model already');
  });

  it('takes the report’s review list: its good lines, the NG ones said and left out', async () => {
    const list = join(dir, 'review.txt');
    const goods = readdirSync(join(data, 'test', 'good')).map((f) => join(data, 'test', 'good', f));
    const ngs = readdirSync(join(data, 'test', 'dust')).map((f) => join(data, 'test', 'dust', f));
    writeFileSync(
      list,
      ['# kensa review', `good\t${goods[1]}`, `good\t${goods[2]}`, `ng\t${ngs[0]}`, ''].join('\n'),
    );
    expect(readImageList(list).good.map((i) => i.path)).toEqual([goods[1], goods[2]]);
    const warnings: string[] = [];
    const r = await update({
      model,
      add: list,
      out: join(dir, 'reviewed.kensa'),
      onWarning: (w) => warnings.push(w),
    });
    expect(r.added.map((i) => i.path)).toEqual([goods[1], goods[2]]);
    expect(warnings.join('\n')).toContain('1 image is marked ng in the list, not taken as good images');
    // a line naming a file that is not there: the list and the line are named, nothing is written
    writeFileSync(list, `good\t${goods[1]}\ngood\tnowhere/missing.png\n`);
    await expect(update({ model, add: list, out: join(dir, 'never.kensa') })).rejects.toThrow(
      `${list}: line 2 names nowhere/missing.png, which is not there`,
    );
    expect(existsSync(join(dir, 'never.kensa'))).toBe(false);
  });

  it('refuses an --out that exists without --force, and a classifier, naming the file', async () => {
    const taken = join(dir, 'taken.kensa');
    copyFileSync(model, taken);
    await expect(update({ model, add: fresh, out: taken })).rejects.toThrow(
      `${taken}: a patchcore model (written`,
    );
    const labelled = join(dir, 'labelled');
    await makeSyntheticDataset(labelled, { size: SIZE, train: 8, testGood: 2, testPerDefect: 4, seed: 3 });
    mkdirSync(join(labelled, 'train', 'dust'));
    for (const f of readdirSync(join(labelled, 'test', 'dust')).slice(0, 2))
      copyFileSync(join(labelled, 'test', 'dust', f), join(labelled, 'train', 'dust', f));
    const classifier = join(dir, 'classifier.kensa');
    await trainClassifier({
      data: labelled,
      out: classifier,
      size: SIZE,
      head: 'image',
      copies: 1,
      epochs: 5,
    });
    await expect(update({ model: classifier, add: fresh, out: join(dir, 'c2.kensa') })).rejects.toThrow(
      `${classifier}: kensa update adds good images to a model fitted on good images (patchcore, padim, ensemble); a classifier model learns from labelled images`,
    );
  });

  it('from the command line, in Japanese', () => {
    const BIN = new URL('../../../dist/cli/main.js', import.meta.url).pathname;
    const out = join(dir, 'cli.kensa');
    const r = spawnSync(
      process.execPath,
      [BIN, 'update', '--model', model, '--add', join(data, 'test', 'good'), '--out', out, '--lang', 'ja'],
      {
        encoding: 'utf8',
        env: { ...process.env, KENSA_OFFLINE: '1' },
      },
    );
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`モデルを書き出しました: ${out}`);
    expect(r.stdout).toMatch(/良品 \d+ 枚を追加/);
    expect(r.stdout).toMatch(/fpr0 [\d.]+ → [\d.]+。校正は良品 \d+ 枚/);
    // progress, memory and warnings in Japanese too (stderr is not a terminal here: plain lines)
    expect(r.stderr).toMatch(/^更新 \(patchcore\): 特徴の抽出: 3\/3 枚/m);
    expect(r.stderr).toMatch(/^メモリ: ピーク時のメモリは約 [\d.]+ GiB/m);
    expect(r.stderr).toMatch(/^警告: 校正で採点した良品は \d+ 枚です/m);
    expect(r.stderr).not.toMatch(/^warning:/m);
  });
}, 120_000);
