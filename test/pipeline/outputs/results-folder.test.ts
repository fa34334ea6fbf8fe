/**
 * What a line's engineer meets on the second day: a results folder used again holds only today's
 * outputs (yesterday's overlays and report removed — only the files kensa wrote, as the folder records
 * them, or kensa's own output names in a folder of an older kensa; the user's files and a model saved
 * there stay); a model file is not replaced without --force; BMP images (what many industrial cameras
 * write) get overlays and heat maps like any format, and a part.bmp + part.tif pair gets two
 * recognisable names.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../../src/data/synthetic.js';
import { RESULTS_MARKER, RUN_RECORD } from '../../../src/pipeline/outputs/paths.js';
import { updateThresholds } from '../../../src/pipeline/contracts/model-file.js';
import { predict } from '../../../src/pipeline/verbs/predict.js';
import { train } from '../../../src/pipeline/verbs/train.js';
import { InspectionService } from '../../../src/serve/server.js';
import { encodeBmp } from '../../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kensa-results-folder-'));
const data = join(dir, 'data');
const model = join(dir, 'm.kensa');
const test = (...parts: string[]) => join(data, 'test', ...parts);

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 64, train: 10, testGood: 3, testPerDefect: 2, seed: 9 });
  await train({ data, method: 'padim', out: model, preprocess: { mode: 'fit', size: 64 }, d: 8 });
});

describe('a results folder used again', () => {
  it('holds only the last run’s outputs; the user’s files and a model saved there stay', async () => {
    const out = join(dir, 'daily');
    await predict({ model, inputs: [test('good'), test('dust')], out, report: true });
    expect(readdirSync(join(out, 'overlays'))).toHaveLength(5);
    expect(existsSync(join(out, 'report.html'))).toBe(true);
    writeFileSync(join(out, 'notes.txt'), 'line 3, shift B');
    writeFileSync(join(out, 'kept.kensa'), readFileSync(model));
    const record = JSON.parse(readFileSync(join(out, RUN_RECORD), 'utf8'));
    expect(record.files).toContain('predictions.csv');
    expect(record.files).toContain('report.html');
    // the next day: one image, no report
    const r = await predict({ model, inputs: [test('good', '000.png')], out });
    expect(r.predictions).toHaveLength(1);
    expect(readdirSync(join(out, 'overlays'))).toEqual(['000.png']);
    for (const gone of ['report.html', 'figures', 'thumbs'])
      expect(existsSync(join(out, gone)), gone).toBe(gone === 'thumbs');
    expect(readdirSync(join(out, 'thumbs'))).toEqual(['000.jpg']);
    expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('line 3, shift B');
    expect(existsSync(join(out, 'kept.kensa'))).toBe(true);
    expect(readFileSync(join(out, 'predictions.csv'), 'utf8').trim().split('\n')).toHaveLength(2);
  });

  it('of an older kensa (no record): kensa’s own outputs are removed, nothing else', async () => {
    const out = join(dir, 'older');
    mkdirSync(join(out, 'overlays'), { recursive: true });
    writeFileSync(join(out, RESULTS_MARKER), 'kensa results folder\n');
    writeFileSync(join(out, 'overlays', 'yesterday.png'), 'old');
    writeFileSync(join(out, 'report.html'), 'old');
    writeFileSync(join(out, 'mine.csv'), 'the user’s');
    await predict({ model, inputs: [test('good', '001.png')], out });
    expect(readdirSync(join(out, 'overlays'))).toEqual(['001.png']);
    expect(existsSync(join(out, 'report.html'))).toBe(false);
    expect(readFileSync(join(out, 'mine.csv'), 'utf8')).toBe('the user’s');
  });

  it('a record that names files outside the folder removes nothing outside it', async () => {
    const out = join(dir, 'tampered');
    mkdirSync(out);
    const outside = join(dir, 'outside.txt');
    writeFileSync(outside, 'keep');
    writeFileSync(join(out, RUN_RECORD), JSON.stringify({ files: ['../outside.txt', outside] }));
    await predict({ model, inputs: [test('good', '002.png')], out, overlays: false });
    expect(readFileSync(outside, 'utf8')).toBe('keep');
  });
});

describe('a model file already there', () => {
  it('is not replaced without --force, and the message says what it holds', async () => {
    await updateThresholds(model, { custom: 12.5 });
    await expect(
      train({ data, method: 'padim', out: model, preprocess: { mode: 'fit', size: 64 }, d: 8 }),
    ).rejects.toThrow(`${model}: a padim model (written `);
    await expect(
      train({ data, method: 'padim', out: model, preprocess: { mode: 'fit', size: 64 }, d: 8 }),
    ).rejects.toThrow(
      'with the custom threshold 12.5) is already there; kensa train does not replace it without --force',
    );
    const other = join(dir, 'not-a-model.kensa');
    writeFileSync(other, 'hello');
    await expect(train({ data, out: other, preprocess: { mode: 'fit', size: 64 } })).rejects.toThrow(
      'not a model this kensa reads) is already there',
    );
    const r = await train({
      data,
      method: 'padim',
      out: model,
      preprocess: { mode: 'fit', size: 64 },
      d: 8,
      force: true,
    });
    expect(r.model.meta.thresholds.custom).toBeUndefined();
  });
});

describe('sizes in millimetres', () => {
  it('train stores the pixel size; predict gives regions in mm and applies the size rule', async () => {
    const mm = join(dir, 'mm.kensa');
    await train({
      data,
      method: 'padim',
      out: mm,
      preprocess: { mode: 'fit', size: 64 },
      d: 8,
      mmPerPixel: 0.05,
    });
    const out = join(dir, 'mm-out');
    const r = await predict({ model: mm, inputs: [test('dust')], out, overlays: false, threshold: 1e-6 });
    const region = r.predictions[0].regions[0];
    expect(region.width_mm).toBeCloseTo(region.width * 0.05, 10);
    expect(region.area_mm2).toBeCloseTo(region.area * 0.05 ** 2, 10);
    expect(readFileSync(join(out, 'regions.csv'), 'utf8').split('\n')[0]).toContain(
      'width_mm,height_mm,area_mm2,counts',
    );
    // a rule no region reaches: every image OK, its regions listed as not counting
    const ruled = await predict({
      model: mm,
      inputs: [test('dust')],
      out,
      overlays: false,
      threshold: 1e-6,
      minDefectMm: 100,
    });
    expect(ruled.predictions.every((p) => p.verdict === 'OK' && p.regions.length > 0)).toBe(true);
    expect(ruled.predictions.every((p) => p.regions.every((g) => g.counts === false))).toBe(true);
    // the rule without a pixel size
    await expect(predict({ model, inputs: [test('dust')], out, minDefectMm: 1 })).rejects.toThrow(
      '--min-defect-mm needs the size of a pixel',
    );
    await expect(
      InspectionService.start({ models: [{ name: 'm', model }], port: 0, minDefectMm: 1 }),
    ).rejects.toThrow('--min-defect-mm needs the size of a pixel');
  });
});

describe('BMP images', () => {
  it('get overlays and heat maps like any format; part.bmp and part.tif keep apart', async () => {
    const shots = join(dir, 'shots');
    mkdirSync(shots);
    const { data: rgb, info } = await sharp(test('dust', '000.png'))
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    const bmp = encodeBmp(rgb, info.width, info.height, 24);
    writeFileSync(join(shots, 'part.bmp'), bmp);
    await sharp(rgb, { raw: { width: info.width, height: info.height, channels: 3 } })
      .tiff({ compression: 'lzw' }) // lossless (sharp's default is JPEG inside the TIFF)
      .toFile(join(shots, 'part.tif'));
    const out = join(dir, 'shots-out');
    const r = await predict({ model, inputs: [shots], out });
    expect(r.errors).toEqual([]);
    expect(readdirSync(join(out, 'overlays')).sort()).toEqual(['part_bmp.png', 'part_tif.png']);
    const [a, b] = r.predictions;
    expect(Math.abs(a.score - b.score)).toBeLessThan(1e-5 * a.score);
    const overlay = await sharp(join(out, 'overlays', 'part_bmp.png')).metadata();
    expect([overlay.width, overlay.height]).toEqual([info.width, info.height]);
    // the service: a BMP body with ?heatmap=1
    const service = await InspectionService.start({ models: [{ name: 'm', model }], port: 0 });
    try {
      const res = await fetch(`${service.url}/v1/inspect?heatmap=1`, {
        method: 'POST',
        body: new Uint8Array(bmp),
      });
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(Math.abs(body.score - a.score)).toBeLessThan(1e-5 * a.score);
      const png = await sharp(Buffer.from(body.heatmap_png, 'base64')).metadata();
      expect(png.format).toBe('png');
    } finally {
      await service.close();
    }
  });
});
