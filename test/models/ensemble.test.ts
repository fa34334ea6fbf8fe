/**
 * The ensemble against its members fitted alone: on the same images with the same seed, each image's
 * score is (s_patchcore / σ_patchcore + s_padim / σ_padim) / 2 of the two models' own scores, and the
 * spreads σ are those of the two models' own calibration scores (PatchCore's folds, PaDiM's
 * leave-one-out), so the ensemble's calibration is its members' calibrations combined.
 */
import { mkdtempSync, readdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportOnnx } from '../../src/export/onnx.js';
import { collectImages } from '../../src/data/dataset.js';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { ensemble, spread, weights, type EnsembleState } from '../../src/models/ensemble/method.js';
import { Inspector } from '../../src/pipeline/engine/inspector.js';
import { train, type TrainResult } from '../../src/pipeline/verbs/train.js';

const dir = mkdtempSync(join(tmpdir(), 'kensa-ensemble-'));
const preprocess = { mode: 'resize', size: 64 } as const;
const fitted: Record<string, TrainResult> = {};

beforeAll(async () => {
  await makeSyntheticDataset(dir, { size: 64, train: 14, testGood: 4, testPerDefect: 3, seed: 5 });
  for (const method of ['ensemble', 'patchcore', 'padim'])
    fitted[method] = await train({ data: dir, method, preprocess, seed: 3 });
}, 120_000);

/** Each calibration image's score, by file. */
const byFile = (r: TrainResult) =>
  new Map(r.calibration.map((item, i) => [item.path, r.model.calibrationScores[i]]));

async function scores(r: TrainResult, files: string[]): Promise<Map<string, number>> {
  const inspector = await Inspector.open(r.model);
  const out = new Map<string, number>();
  try {
    for await (const s of inspector.score(files.map((path) => ({ path })))) out.set(s.item.path, s.score);
  } finally {
    await inspector.dispose();
  }
  return out;
}

describe('--method ensemble', () => {
  it('weighs each member by the spread of its own calibration scores', () => {
    const state = fitted.ensemble.model.state as EnsembleState;
    const pc = [...fitted.patchcore.model.calibrationScores];
    const pd = [...fitted.padim.model.calibrationScores];
    expect(fitted.padim.model.meta.calibration.mode).toBe('loo');
    expect(state.scales[0]).toBeCloseTo(spread(pc), 4);
    expect(state.scales[1]).toBeCloseTo(spread(pd), 4);
    // and each calibration image's score is its members' out-of-sample scores combined
    const [wa, wb] = weights(state.scales);
    const a = byFile(fitted.patchcore);
    const b = byFile(fitted.padim);
    const e = byFile(fitted.ensemble);
    expect(e.size).toBe(14);
    for (const [file, score] of e) {
      const want = wa * a.get(file)! + wb * b.get(file)!;
      expect(Math.abs(score - want) / want).toBeLessThan(1e-5);
    }
    expect(fitted.ensemble.model.meta.thresholds.fpr0).toBeCloseTo(Math.max(...e.values()), 5);
  });

  it('scores a new image as its members alone would, combined', async () => {
    const files = collectImages([join(dir, 'test')]).map((i) => i.path);
    const [e, a, b] = await Promise.all(
      ['ensemble', 'patchcore', 'padim'].map((m) => scores(fitted[m], files)),
    );
    const [wa, wb] = weights((fitted.ensemble.model.state as EnsembleState).scales);
    expect(e.size).toBe(files.length);
    for (const file of files) {
      const want = wa * a.get(file)! + wb * b.get(file)!;
      expect(Math.abs(e.get(file)! - want) / want).toBeLessThan(1e-5);
    }
  });

  it('gives each member its own options: --d to PaDiM, --coreset and --neighbors to PatchCore', async () => {
    const r = await train({ data: dir, method: 'ensemble', preprocess, d: 6, coreset: 0.5, neighbors: 3 });
    const state = r.model.state as EnsembleState;
    expect(state.padim.layout.index.length).toBe(6);
    expect(state.patchcore.coreset).toBe(0.5);
    expect(state.patchcore.neighbors).toBe(3);
    expect((r.model.meta as unknown as Record<string, unknown>).ensemble).toMatchObject({
      padim: { d: 6 },
      patchcore: { coreset: 0.5, neighbors: 3 },
    });
  });

  it('takes images of several sizes with the aspect kept: PaDiM on its own grid, and the export agrees', async () => {
    // a third of the images (training and test) stretched to 64×112: two input shapes after preprocessing
    const mixed = mkdtempSync(join(tmpdir(), 'kensa-ensemble-mixed-'));
    await makeSyntheticDataset(mixed, { size: 64, train: 12, testGood: 3, testPerDefect: 2, seed: 8 });
    const all = collectImages([mixed]).map((i) => i.path);
    for (const file of all.filter((_, i) => i % 3 === 0)) {
      await sharp(file).resize(112, 64, { fit: 'fill' }).toFile(`${file}.tmp.png`);
      renameSync(`${file}.tmp.png`, file);
    }
    const r = await train({ data: mixed, method: 'ensemble', preprocess: { mode: 'fit', size: 64 } });
    const state = r.model.state as EnsembleState;
    // the typical input is 64×64 pixels or so: a square grid of 16×16 stride-4 cells
    expect([state.padim.layout.height, state.padim.layout.width]).toEqual([16, 16]);
    const { bytes } = await exportOnnx(r.model);
    const session = await ort.InferenceSession.create(bytes);
    const inspector = await Inspector.open(r.model);
    const shapes = new Set<string>();
    try {
      const test = collectImages([join(mixed, 'test')]).map((i) => ({ path: i.path }));
      for await (const k of inspector.score(test)) {
        const g = k.image.geometry;
        shapes.add(`${g.inputWidth}x${g.inputHeight}`);
        const o = await session.run({
          image: new ort.Tensor('uint8', k.image.rgb, [1, g.inputHeight, g.inputWidth, 3]),
        });
        const score = (o.score.data as Float32Array)[0];
        expect(Math.abs(score - k.score) / k.score).toBeLessThan(1e-4);
        const map = o.anomaly_map.data as Float32Array;
        let err = 0;
        for (let i = 0; i < map.length; i++) err = Math.max(err, Math.abs(map[i] - k.map[i]));
        expect(err / k.mapMax).toBeLessThan(1e-3);
      }
    } finally {
      await inspector.dispose();
    }
    expect(shapes.size).toBe(2);
    expect(readdirSync(join(mixed, 'train', 'good'))).toHaveLength(12);
  }, 120_000);

  it('reads back what it stores, and refuses member scales that are not positive numbers', () => {
    const state = fitted.ensemble.model.state as EnsembleState;
    const { tensors, meta } = ensemble.serialize(state);
    const map = new Map(tensors);
    const context = { channels: state.patchcore.channels, formatVersion: 2 };
    const back = ensemble.deserialize(map, meta, context) as EnsembleState;
    expect(back.scales).toEqual(state.scales);
    expect(back.padimCalibration).toBe('loo');
    expect(back.patchcore.bank).toEqual(state.patchcore.bank);
    for (const scales of [{ patchcore: 0, padim: 1 }, { patchcore: 1, padim: Number.NaN }, undefined])
      expect(ensemble.deserialize(map, { ...meta, scales }, context)).toBe(
        "lacks the ensemble's member scales (positive numbers)",
      );
  });

  it('a spread of equal scores is their value, never 0', () => {
    expect(spread([2, 2, 2])).toBe(2);
    expect(spread([1, 3])).toBe(1);
  });
});
