/**
 * Every method in the registry (models/registry.ts), through every verb, the same way: fit on a small
 * generated data set (good images only for an unsupervised method; good and NG images for a supervised
 * one), test, predict, serve one image, export to ONNX and the web — and the same outputs, with the same
 * columns, whatever the method. A new method gets this test by being registered.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { exportModel } from '../../src/export/export.js';
import { METHODS } from '../../src/models/registry.js';
import { loadModel } from '../../src/pipeline/contracts/model-file.js';
import { Inspector } from '../../src/pipeline/engine/inspector.js';
import { PREDICTIONS_HEADER, REGIONS_HEADER } from '../../src/pipeline/engine/run.js';
import { trainClassifier } from '../../src/pipeline/verbs/classify.js';
import { predict } from '../../src/pipeline/verbs/predict.js';
import { test as testModel } from '../../src/pipeline/verbs/test.js';
import { train } from '../../src/pipeline/verbs/train.js';
import { InspectionService } from '../../src/serve/server.js';
import { moveDefectsToTrain } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kensa-methods-'));
const good = join(dir, 'good-only');
const labelled = join(dir, 'labelled');
const SIZE = 64;

beforeAll(async () => {
  await makeSyntheticDataset(good, { size: SIZE, train: 12, testGood: 3, testPerDefect: 3, seed: 21 });
  // the supervised data: the first two test images of each defect type moved into train/<type>
  await makeSyntheticDataset(labelled, { size: SIZE, train: 12, testGood: 3, testPerDefect: 5, seed: 21 });
  moveDefectsToTrain(labelled, 2);
});

const header = (file: string) => readFileSync(file, 'utf8').split('\n')[0].split(',');

describe.each(METHODS.map((m) => [m.name, m] as const))('%s through every verb', (name, method) => {
  const model = join(dir, `${name}.kensa`);
  const data = method.learning === 'supervised' ? labelled : good;
  let scores: Map<string, number>;

  beforeAll(async () => {
    if (method.learning === 'supervised')
      await trainClassifier(
        name === 'classifier'
          ? { data, out: model, size: SIZE, head: 'image', copies: 1, epochs: 40 }
          : { data, out: model, size: SIZE, epochs: 40 },
      );
    else await train({ data, method: name, out: model, preprocess: { mode: 'fit', size: SIZE } });
  });

  it('fits a model file of its method', async () => {
    const m = await loadModel(model);
    expect(m.meta.method).toBe(name);
    expect(m.meta.thresholds.fpr0).toBeGreaterThan(method.scoreRange[0]);
    expect(m.meta.thresholds.fpr0).toBeLessThanOrEqual(method.scoreRange[1]);
  });

  it('refuses a copy with one flipped bit in its tensors, naming the file', async () => {
    const bytes = readFileSync(model);
    const damaged = join(dir, `${name}-damaged.kensa`);
    bytes[bytes.length - 9] ^= 0x10;
    writeFileSync(damaged, bytes);
    await expect(loadModel(damaged)).rejects.toThrow(
      `${damaged}: the model file is damaged: its tensors do not match the checksum`,
    );
  });

  it('tests: metrics, and the same result files as every method', async () => {
    const out = join(dir, `${name}-test`);
    const { metrics } = await testModel({ model, data, out, figures: false });
    expect(metrics.counts.images).toBeGreaterThan(0);
    expect(metrics.image_auroc).not.toBeNull();
    expect(header(join(out, 'predictions.csv'))).toEqual(PREDICTIONS_HEADER);
    expect(header(join(out, 'regions.csv'))).toEqual(REGIONS_HEADER);
    for (const f of ['metrics.json', 'predictions.json', 'ng_list.txt', 'errors.csv', 'results.json'])
      expect(existsSync(join(out, f)), f).toBe(true);
  });

  it('predicts: the same columns; NG images have regions, OK ones none', async () => {
    const out = join(dir, `${name}-predict`);
    const r = await predict({ model, inputs: [join(data, 'test')], out, overlays: true });
    expect(header(join(out, 'predictions.csv'))).toEqual(PREDICTIONS_HEADER);
    expect(header(join(out, 'regions.csv'))).toEqual(REGIONS_HEADER);
    for (const p of r.predictions) {
      expect(p.verdict).toBe(p.score > r.threshold ? 'NG' : 'OK');
      expect(p.regions.length > 0, p.file).toBe(p.verdict === 'NG');
    }
    expect(readdirSync(join(out, 'overlays'))).toHaveLength(r.predictions.length);
    scores = new Map(r.predictions.map((p) => [p.file, p.score]));
  });

  it('serves one image with the score predict gave it', async () => {
    const service = await InspectionService.start({ models: [{ name, model }], port: 0 });
    try {
      const [file, score] = [...scores][0];
      const r = await fetch(`${service.url}/v1/inspect`, { method: 'POST', body: readFileSync(file) });
      expect(r.status).toBe(200);
      const body = await r.json();
      expect(Math.abs(body.score - score)).toBeLessThanOrEqual(1e-5 * Math.max(1, score));
    } finally {
      await service.close();
    }
  });

  it('exports one ONNX graph that gives kensa’s scores, and a web page', async () => {
    const out = join(dir, `${name}-onnx`);
    await exportModel({ model, out, format: 'onnx' });
    const session = await ort.InferenceSession.create(join(out, 'model.onnx'));
    const m = await loadModel(model);
    const inspector = await Inspector.open(m);
    let n = 0;
    try {
      for await (const s of inspector.score([...scores.keys()].map((path) => ({ path })))) {
        const g = s.image.geometry;
        const o = await session.run({
          image: new ort.Tensor('uint8', s.image.rgb, [1, g.inputHeight, g.inputWidth, 3]),
        });
        const score = (o.score.data as Float32Array)[0];
        expect(Math.abs(score - scores.get(s.item.path)!) / Math.max(s.score, 1e-6)).toBeLessThan(1e-4);
        const map = o.anomaly_map.data as Float32Array;
        let err = 0;
        for (let i = 0; i < map.length; i++) err = Math.max(err, Math.abs(map[i] - s.map[i]));
        expect(err / s.mapMax).toBeLessThan(1e-3);
        n++;
      }
    } finally {
      await inspector.dispose();
    }
    expect(n).toBe(scores.size);
    const web = join(dir, `${name}-web`);
    await exportModel({ model, out: web, format: 'web' });
    for (const f of ['index.html', 'model.onnx', 'kensa.json'])
      expect(existsSync(join(web, f)), f).toBe(true);
    expect(JSON.parse(readFileSync(join(web, 'kensa.json'), 'utf8')).method).toBe(name);
  });
});

describe('the method a new model gets where none is named', () => {
  it('is the ensemble; with tiles, PatchCore', async () => {
    const data = join(good, 'train', 'good');
    const whole = await train({ data, preprocess: { mode: 'resize', size: SIZE } });
    expect(whole.model.meta.method).toBe('ensemble');
    const tiled = await train({
      data,
      preprocess: { mode: 'resize', size: SIZE, tile: { size: 32, overlap: 16 } },
    });
    expect(tiled.model.meta.method).toBe('patchcore');
    // a method named is the one used, tiles or not
    const named = await train({
      data,
      method: 'padim',
      preprocess: { mode: 'resize', size: SIZE, tile: { size: 32, overlap: 16 } },
    });
    expect(named.model.meta.method).toBe('padim');
  });
});
