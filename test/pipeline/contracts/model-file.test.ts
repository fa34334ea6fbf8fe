import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../../src/data/synthetic.js';
import { parseSafetensors, serializeSafetensors } from '../../../src/io/safetensors.js';
import type { PadimState } from '../../../src/models/padim/model.js';
import { Inspector } from '../../../src/pipeline/engine/inspector.js';
import {
  loadModel,
  loadModelMetadata,
  parseModel,
  saveModel,
  serializeModel,
  updateThresholds,
} from '../../../src/pipeline/contracts/model-file.js';
import { KensaError } from '../../../src/util/errors.js';
import { fixture, tinyModel } from '../../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kensa-model-file-'));

describe('model file', () => {
  it('round-trips, byte-identically, and saveModel writes the same bytes', async () => {
    const bytes = serializeModel(tinyModel());
    const back = parseModel(bytes, 'm.kensa');
    expect(back.meta).toEqual(tinyModel().meta);
    expect((back.state as PadimState).precision).toEqual((tinyModel().state as PadimState).precision);
    expect(Buffer.from(serializeModel(back)).equals(Buffer.from(bytes))).toBe(true);
    await saveModel(join(dir, 'tiny.kensa'), tinyModel());
    expect(readFileSync(join(dir, 'tiny.kensa')).equals(Buffer.from(bytes))).toBe(true);
  });

  it('stores each PaDiM precision matrix once: the upper triangle', () => {
    const { tensors } = parseSafetensors(serializeModel(tinyModel()));
    expect(tensors.get('padim.precision_packed')!.shape).toEqual([64, 3]);
    expect(tensors.has('padim.precision')).toBe(false);
  });

  it('refuses another format version with a message that says what to do', () => {
    const { tensors, metadata } = parseSafetensors(serializeModel(tinyModel()));
    const other = serializeSafetensors([...tensors], { ...metadata, format_version: '99' });
    expect(() => parseModel(other, 'm.kensa')).toThrow(
      'm.kensa: model format version 99 is not supported by this kensa (it reads versions 1 and 2). Use the kensa version that wrote it, or train the model again',
    );
  });

  it('refuses truncated files, non-finite statistics and an unknown method', () => {
    const bytes = serializeModel(tinyModel());
    expect(() => parseModel(bytes.subarray(0, bytes.length - 10), 'm.kensa')).toThrow(KensaError);
    const bad = tinyModel();
    (bad.state as PadimState).precision[3] = NaN;
    expect(() => parseModel(serializeModel(bad), 'm.kensa')).toThrow(
      'm.kensa: not a usable kensa model: it holds non-finite numbers',
    );
    const { tensors, metadata } = parseSafetensors(bytes);
    const meta = JSON.parse(metadata.kensa);
    const other = serializeSafetensors([...tensors], {
      ...metadata,
      kensa: JSON.stringify({ ...meta, method: 'nope' }),
    });
    expect(() => parseModel(other, 'm.kensa')).toThrow(
      `m.kensa: not a usable kensa model: its metadata names an unknown method "nope" (this kensa knows patchcore, padim, ensemble, classifier, patch-classifier)`,
    );
  });

  it('a threshold change rewrites the header only: tensors byte for byte, mode kept, a symbolic link written through', async () => {
    const real = join(dir, 'real.kensa');
    await saveModel(real, tinyModel());
    chmodSync(real, 0o640);
    const link = join(dir, 'link.kensa');
    symlinkSync(real, link);
    const before = readFileSync(real);
    const t = await updateThresholds(link, { custom: 2.5 });
    expect(t).toMatchObject({ fpr0: 1, custom: 2.5 });
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(statSync(real).mode & 0o777).toBe(0o640);
    const after = readFileSync(real);
    expect(after.length).toBe(before.length);
    const headerEnd = 8 + Number(before.readBigUInt64LE(0));
    expect(after.subarray(headerEnd).equals(before.subarray(headerEnd))).toBe(true);
    expect((await loadModelMetadata(link)).thresholds.custom).toBe(2.5);
    // into a copy: the original keeps its thresholds
    await updateThresholds(real, { f1: 1.7 }, join(dir, 'copy.kensa'));
    expect((await loadModel(join(dir, 'copy.kensa'))).meta.thresholds).toMatchObject({
      f1: 1.7,
      custom: 2.5,
    });
    expect((await loadModelMetadata(real)).thresholds.f1).toBeUndefined();
  });

  it('files that are not models are refused after their first bytes; a FIFO is not opened', async () => {
    await expect(loadModel('/dev/zero')).rejects.toThrow('/dev/zero: the model file is not a regular file');
    const noise = join(dir, 'noise.kensa');
    writeFileSync(noise, Buffer.alloc(4096, 0xff));
    await expect(loadModel(noise)).rejects.toThrow(
      /noise\.kensa: not a valid safetensors file: the header claims \d+ bytes/,
    );
    const fifo = join(dir, 'pipe.kensa');
    execFileSync('mkfifo', [fifo]);
    await expect(loadModel(fifo)).rejects.toThrow(
      `${fifo}: the model file is not a regular file (a pipe, socket or device)`,
    );
  });
});

describe('kensa 0.1 model files (format version 1)', () => {
  it('still load, and score as kensa 0.1 did', async () => {
    const data = join(dir, 'v1-data');
    await makeSyntheticDataset(data, { size: 64, train: 12, testGood: 3, testPerDefect: 3, seed: 5 });
    const model = await loadModel(fixture('models', 'v1-padim.kensa'));
    expect(model.meta.method).toBe('padim');
    expect(model.meta.calibration.mode).toBe('holdout');
    const expected = JSON.parse(readFileSync(fixture('models', 'v1-padim.scores.json'), 'utf8')).scores as {
      file: string;
      score: number;
    }[];
    const inspector = await Inspector.open(model);
    const items = expected.map((e) => ({ path: join(data, e.file) }));
    const got = new Map<string, number>();
    for await (const r of inspector.score(items)) got.set(r.item.path, r.score);
    await inspector.dispose();
    for (const e of expected)
      expect(Math.abs(got.get(join(data, e.file))! - e.score) / e.score).toBeLessThan(1e-5);
  });
});
