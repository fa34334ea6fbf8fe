/// <reference lib="dom" />
/**
 * The web export in a real browser (Playwright + Debian's Chromium, headless), opened from file://: the
 * operator's page loads the model offline, images are given to it as a drop would, and it shows the
 * verdicts and scores kensa predict gives (within 1e-3 relative; the images are at the model's input size,
 * so the browser does not resample them), with a heat map and boxes for each; the page switches to
 * Japanese; a PaDiM export gives its scores too and refuses an image of another shape, as kensa does; a
 * classifier's (the patch head on the ensemble) gives kensa's probabilities and verdicts.
 * Skipped, with a message, where /usr/bin/chromium is absent (.ci/run installs it).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { exportModel } from '../../src/export/export.js';
import { moveDefectsToTrain } from '../helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const present = existsSync(CHROMIUM);
if (!present)
  console.warn(
    `skipping the browser test of the web export: ${CHROMIUM} is absent (apt-get install -y chromium)`,
  );

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'kensa-web-'));
const kensa = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kensa ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r;
};
let browser: Browser;

/**
 * Opens an exported page from file://, gives it the files as a drop would, waits until each has its
 * result, and reads what the page shows of each.
 */
async function scoreInPage(web: string, files: string[]) {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`file://${join(web, 'index.html')}`);
  await page.waitForSelector('body[data-ready], body[data-failed]', { timeout: 60_000 });
  const status = await page.locator('#status').innerText();
  await page.setInputFiles('#files', files);
  await page.waitForSelector(`body[data-done="${files.length}"]`, { timeout: 120_000 });
  const shown = await page.$$eval('.result', (boxes) =>
    boxes.map((b) => ({
      verdict: b.getAttribute('data-verdict'),
      score: Number(b.getAttribute('data-score')),
      error: b.getAttribute('data-error'),
      canvas: b.querySelectorAll('canvas').length,
    })),
  );
  return { page, status, shown, errors };
}

describe.skipIf(!present)('the web export in Chromium, from file://', () => {
  beforeAll(async () => {
    const data = join(dir, 'data');
    await makeSyntheticDataset(data, { size: 96, train: 16, testGood: 3, testPerDefect: 3, seed: 41 });
    const model = join(dir, 'm.kensa');
    kensa('train', '--data', data, '--size', '96', '--out', model);
    // the graph in parts of 1 MB (an odd size: base64 padding inside the parts), put back together by the
    // page — as a large model's 48 MB parts are
    const exported = await exportModel({
      model,
      out: join(dir, 'web'),
      format: 'web',
      webPartBytes: 2 ** 20,
    });
    expect(exported.files.filter((f) => /^model-\d+\.js$/.test(f)).length).toBe(
      Math.ceil(exported.onnxBytes / 2 ** 20),
    );
    expect(exported.onnxBytes).toBeGreaterThan(4 * 2 ** 20);
    kensa('predict', '--model', model, '--out', join(dir, 'predict'), '--no-overlays', join(data, 'test'));
    // a PaDiM model too: one input size, refused for an image of another shape
    const padim = join(dir, 'padim.kensa');
    kensa('train', '--method', 'padim', '--data', data, '--size', '96', '--out', padim);
    kensa('export', '--model', padim, '--out', join(dir, 'web-padim'), '--format', 'web');
    kensa(
      'predict',
      '--model',
      padim,
      '--out',
      join(dir, 'predict-padim'),
      '--no-overlays',
      join(data, 'test'),
    );
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('shows kensa predict’s verdicts and scores, with heat maps and boxes, in English and Japanese', async () => {
    const predicted: { file: string; score: number; verdict: string; regions: unknown[] }[] = JSON.parse(
      readFileSync(join(dir, 'predict', 'predictions.json'), 'utf8'),
    ).predictions;
    const { page, status, shown, errors } = await scoreInPage(
      join(dir, 'web'),
      predicted.map((p) => p.file),
    );
    expect(status).toMatch(/^Ready\. Model: ensemble/);
    expect(shown).toHaveLength(predicted.length);
    shown.forEach((s, i) => {
      expect(s.verdict, predicted[i].file).toBe(predicted[i].verdict);
      expect(Math.abs(s.score - predicted[i].score) / predicted[i].score).toBeLessThan(1e-3);
      expect(s.canvas).toBe(1);
    });
    const ng = predicted.filter((p) => p.verdict === 'NG').length;
    expect(ng).toBeGreaterThan(0);
    expect(await page.locator('#summary').innerText()).toBe(
      `${predicted.length} images: ${ng} NG, ${predicted.length - ng} OK`,
    );
    await page.click('#lang');
    expect(await page.locator('#summary').innerText()).toBe(
      `${predicted.length} 枚: NG ${ng} 枚、OK ${predicted.length - ng} 枚`,
    );
    expect(await page.locator('h1').innerText()).toBe('kensa — 検査');
    expect(errors).toEqual([]);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'web-export.png'), fullPage: true });
    // nothing was fetched from the network
    expect(readdirSync(join(dir, 'web'))).toContain('ort-wasm-simd-threaded.wasm');
  });

  it('a PaDiM export: the same scores, and an image of another shape refused with the reason', async () => {
    const predicted: { file: string; score: number; verdict: string }[] = JSON.parse(
      readFileSync(join(dir, 'predict-padim', 'predictions.json'), 'utf8'),
    ).predictions;
    const wide = join(dir, 'wide.png');
    await sharp({ create: { width: 192, height: 96, channels: 3, background: '#888' } })
      .png()
      .toFile(wide);
    const { status, shown } = await scoreInPage(join(dir, 'web-padim'), [
      ...predicted.map((p) => p.file),
      wide,
    ]);
    expect(status).toMatch(/^Ready\. Model: padim/);
    predicted.forEach((p, i) => {
      expect(shown[i].verdict, p.file).toBe(p.verdict);
      expect(Math.abs(shown[i].score - p.score) / p.score).toBeLessThan(1e-3);
    });
    expect(shown[predicted.length].error).toBe(
      'after preprocessing this image is 128×64 pixels; the model takes 96×96',
    );
  });

  it("a classifier's export (the patch head on the ensemble, classify train's default): kensa's probabilities and verdicts", async () => {
    const data = join(dir, 'cdata');
    await makeSyntheticDataset(data, { size: 96, train: 16, testGood: 3, testPerDefect: 4, seed: 43 });
    moveDefectsToTrain(data, 2);
    const model = join(dir, 'c.kensa');
    kensa('classify', 'train', '--data', data, '--size', '96', '--out', model);
    kensa('classify', 'predict', '--model', model, '--out', join(dir, 'predict-c'), join(data, 'test'));
    kensa('export', '--model', model, '--out', join(dir, 'web-c'), '--format', 'web');
    const predicted: { file: string; score: number; verdict: string }[] = JSON.parse(
      readFileSync(join(dir, 'predict-c', 'predictions.json'), 'utf8'),
    ).predictions;
    const { status, shown, errors } = await scoreInPage(
      join(dir, 'web-c'),
      predicted.map((p) => p.file),
    );
    expect(status).toMatch(/^Ready\. Model: patch-classifier/);
    expect(errors).toEqual([]);
    expect(shown).toHaveLength(predicted.length);
    predicted.forEach((p, i) => {
      expect(shown[i].verdict, p.file).toBe(p.verdict);
      // probabilities: onnxruntime's Sigmoid is exact to ~1e-7 absolute
      expect(Math.abs(shown[i].score - p.score), p.file).toBeLessThan(1e-5);
    });
    expect(predicted.some((p) => p.verdict === 'NG')).toBe(true);
  }, 180_000);
});
