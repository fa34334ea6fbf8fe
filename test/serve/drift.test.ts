/**
 * The service watches drift: the recent images judged OK against the model's calibration scores, as a
 * metric and a log line when it starts. Here the model's calibration scores are made lower than any
 * image the service will see (as if the camera had changed since training), so that every OK image lies
 * above the calibration's 90th percentile.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import type { KensaModel } from '../../src/pipeline/contracts/model-file.js';
import { train } from '../../src/pipeline/verbs/train.js';
import { InspectionService } from '../../src/serve/server.js';

const dir = mkdtempSync(join(tmpdir(), 'kensa-serve-drift-'));
const data = join(dir, 'data');
let model: KensaModel;

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 64, train: 10, testGood: 8, testPerDefect: 1, seed: 8 });
  ({ model } = await train({ data, preprocess: { mode: 'resize', size: 64 } }));
});

describe('kensa serve: drift', () => {
  it('says when the recent OK images no longer look like the calibration images, once, with a metric', async () => {
    const fpr0 = model.meta.thresholds.fpr0;
    const shifted: KensaModel = {
      ...model,
      // the thresholds stay; the calibration the images are compared with sits far below them
      calibrationScores: Float32Array.from(model.calibrationScores, (v) => v * 1e-3),
    };
    const log: string[] = [];
    const service = await InspectionService.start({
      models: [{ name: 'line3', model: shifted }],
      port: 0,
      threshold: fpr0 * 100,
      onLog: (line) => log.push(line),
    });
    try {
      const good = readdirSync(join(data, 'test', 'good')).map((f) =>
        readFileSync(join(data, 'test', 'good', f)),
      );
      const metric = async () =>
        /^kensa_drift\{model="line3"\} (\d)/m.exec(await (await fetch(`${service.url}/metrics`)).text())?.[1];
      for (let i = 0; i < 29; i++) {
        const r = await fetch(`${service.url}/v1/inspect`, { method: 'POST', body: good[i % good.length] });
        expect((await r.json()).verdict).toBe('OK');
      }
      expect(await metric()).toBe('0');
      expect(log.some((l) => l.includes('no longer look like'))).toBe(false);
      for (let i = 0; i < 5; i++)
        await fetch(`${service.url}/v1/inspect`, { method: 'POST', body: good[i % good.length] });
      expect(await metric()).toBe('1');
      const said = log.filter((l) => l.includes('no longer look like'));
      expect(said).toHaveLength(1);
      expect(said[0]).toMatch(
        /^warning: line3: the images inspected no longer look like the good images the threshold was calibrated on: 30 of the 30 images judged OK recently/,
      );
    } finally {
      await service.close();
    }
  });
});
