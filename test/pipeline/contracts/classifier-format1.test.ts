/**
 * A classifier file written before the classifier was a method (format kensa-classifier 1, kensa at
 * commit 178c542) still loads as a kensa model and scores every image as it did then: the stored
 * probabilities of test/fixtures/models/classifier-format1.scores.json, within float32 rounding, with the
 * same verdicts — through kensa predict and kensa test, which it now shares with every other model.
 */
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../../src/data/synthetic.js';
import { loadModel } from '../../../src/pipeline/contracts/model-file.js';
import { predict } from '../../../src/pipeline/verbs/predict.js';
import { test as testModel } from '../../../src/pipeline/verbs/test.js';

const FIXTURE = new URL('../../fixtures/models/classifier-format1.kensa', import.meta.url).pathname;
const SCORES = new URL('../../fixtures/models/classifier-format1.scores.json', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'kensa-classifier-v1-'));
const data = join(dir, 'data');

beforeAll(async () => {
  // the data the fixture was trained and scored on (see the note in the scores file)
  await makeSyntheticDataset(data, { size: 64, train: 12, testGood: 3, testPerDefect: 4, seed: 5 });
  for (const type of ['dust', 'scratch']) {
    mkdirSync(join(data, 'train', type));
    for (const f of readdirSync(join(data, 'test', type))
      .sort()
      .slice(0, 2))
      renameSync(join(data, 'test', type, f), join(data, 'train', type, f));
  }
});

describe('a kensa-classifier file of format 1', () => {
  it('loads as a classifier model, without a quantile threshold or calibration scores it never had', async () => {
    const model = await loadModel(FIXTURE);
    expect(model.meta.method).toBe('classifier');
    expect(model.meta.thresholds.fpr0).toBeGreaterThan(0);
    expect(model.meta.thresholds.fpr0).toBeLessThan(1);
    expect(model.meta.thresholds.quantile).toBeUndefined();
    expect(model.calibrationScores).toHaveLength(0);
    expect(model.meta.calibration.scores.max).toBe(model.meta.thresholds.fpr0);
  });

  it('scores every image as kensa 0.1 did, with the same verdicts (predict and test)', async () => {
    const expected = JSON.parse(readFileSync(SCORES, 'utf8')).scores as {
      file: string;
      probability: number;
      verdict: string;
    }[];
    const { predictions } = await predict({
      model: FIXTURE,
      inputs: [join(data, 'test')],
      out: join(dir, 'predict'),
      overlays: false,
    });
    expect(predictions).toHaveLength(expected.length);
    for (const e of expected) {
      const p = predictions.find((q) => q.file === join(data, e.file));
      expect(p, e.file).toBeDefined();
      expect(Math.abs(p!.score - e.probability), e.file).toBeLessThan(1e-5);
      expect(p!.verdict, e.file).toBe(e.verdict);
    }
    const { metrics, images } = await testModel({
      model: FIXTURE,
      data,
      out: join(dir, 'test'),
      figures: false,
    });
    expect(images.map((i) => i.verdict_fpr0).sort()).toEqual(expected.map((e) => e.verdict).sort());
    expect(metrics.confusion.quantile).toBeUndefined();
    expect(metrics.calibration_error).toBeGreaterThanOrEqual(0);
  });
});
