/// <reference lib="dom" />
/**
 * The HTML report in a real browser: Playwright (playwright-core) driving Debian's Chromium headless.
 * Opens a report written by `kensa test --report` from file://, moves the threshold slider and checks
 * the counts against the data, switches to Japanese, and keeps a screenshot (test-artifacts/report.png).
 * Skipped, with a message, where /usr/bin/chromium is absent (.ci/run installs it).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';

const CHROMIUM = '/usr/bin/chromium';
const present = existsSync(CHROMIUM);
if (!present)
  console.warn(
    `skipping the browser test of the report: ${CHROMIUM} is absent (apt-get install -y chromium)`,
  );

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'kensa-report-'));
let browser: Browser;
let page: Page;
let results: {
  threshold: number;
  model: { thresholds: Record<string, number> };
  images: { score: number; label?: number; thumb: string }[];
  folders?: { good: string; ng: string };
};

const kensa = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kensa ${args.join(' ')}: ${r.stderr}`);
  return r;
};
const text = (id: string) => page.locator(`#${id}`).innerText();
const expected = (t: number) => {
  const c = { ng: 0, ok: 0, tp: 0, fp: 0, tn: 0, fn: 0 };
  for (const im of results.images) {
    const ng = im.score > t;
    c[ng ? 'ng' : 'ok']++;
    if (im.label === 1) c[ng ? 'tp' : 'fn']++;
    else c[ng ? 'fp' : 'tn']++;
  }
  return c;
};

describe.skipIf(!present)('HTML report in Chromium', () => {
  beforeAll(async () => {
    const data = join(dir, 'data');
    await makeSyntheticDataset(data, { size: 96, train: 16, testGood: 6, testPerDefect: 5, seed: 9 });
    kensa(
      'train',
      '--method',
      'padim',
      '--data',
      data,
      '--out',
      join(dir, 'm.kensa'),
      '--size',
      '96',
      '--d',
      '16',
    );
    kensa(
      'test',
      '--model',
      join(dir, 'm.kensa'),
      '--data',
      data,
      '--out',
      join(dir, 'results'),
      '--report',
      '--save-model',
      join(dir, 'f1.kensa'),
    );
    results = JSON.parse(readFileSync(join(dir, 'results', 'results.json'), 'utf8'));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
    await page.goto(pathToFileURL(join(dir, 'results', 'report.html')).href);
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('opens from file:// with the counts at the fpr0 threshold and every thumbnail', async () => {
    const c = expected(results.threshold);
    expect(await text('n-images')).toBe(String(results.images.length));
    expect(await text('n-ng')).toBe(String(c.ng));
    expect(await text('conf-tp')).toBe(String(c.tp));
    expect(await text('conf-fp')).toBe(String(c.fp));
    expect(await page.locator('#grid .tile').count()).toBe(results.images.length);
    const broken = await page.evaluate(() =>
      Promise.all(
        [...document.querySelectorAll<HTMLImageElement>('#grid img')].map(async (img) => {
          img.loading = 'eager';
          await img.decode().catch(() => undefined);
          return img.naturalWidth === 0 ? img.src : null;
        }),
      ),
    );
    expect(broken.filter(Boolean)).toEqual([]);
  });

  it('shows the calibration scores beside the test scores, and the highest calibration images with a command to leave one out', async () => {
    const calibration = (
      results as unknown as { calibration: { scores: number[]; highest: { file: string; thumb?: string }[] } }
    ).calibration;
    expect(calibration.scores).toHaveLength(16);
    expect(await page.locator('#calib-outline').count()).toBe(1);
    expect(await page.locator('#calibration-grid .tile').count()).toBe(5);
    const thumbs = await page.evaluate(() =>
      Promise.all(
        [...document.querySelectorAll<HTMLImageElement>('#calibration-grid img')].map(async (img) => {
          await img.decode().catch(() => undefined);
          return img.naturalWidth;
        }),
      ),
    );
    expect(thumbs).toHaveLength(5);
    expect(thumbs.every((w) => w > 0)).toBe(true);
    expect(await page.locator('#calibration-note').innerText()).toContain(
      'The thresholds come from 16 good images',
    );
    expect(await page.locator('#cmd-exclude').inputValue()).toBe(
      `kensa threshold --model ${join(dir, 'm.kensa')} --exclude ${calibration.highest[0].file}`,
    );
  });

  it('moving the slider updates NG/OK, the confusion matrix, FPR and recall', async () => {
    const scores = results.images.map((i) => i.score).sort((a, b) => a - b);
    for (const t of [
      scores[2] + 1e-6,
      scores[Math.floor(scores.length / 2)] + 1e-6,
      scores[scores.length - 1] + 1,
    ]) {
      await page.locator('#slider').evaluate((el: HTMLInputElement, v) => {
        el.value = String(v);
        el.dispatchEvent(new Event('input', { bubbles: true }));
      }, t);
      await page.waitForFunction(
        () =>
          document.getElementById('t-value')!.textContent ===
          Number((document.getElementById('slider') as HTMLInputElement).value).toFixed(3),
      );
      const value = Number(await page.locator('#slider').evaluate((el: HTMLInputElement) => el.value));
      const c = expected(value);
      expect(await text('n-ng')).toBe(String(c.ng));
      expect(await text('n-ok')).toBe(String(c.ok));
      expect(await text('conf-tp')).toBe(String(c.tp));
      expect(await text('conf-fn')).toBe(String(c.fn));
      expect(await text('conf-fp')).toBe(String(c.fp));
      expect(await text('conf-tn')).toBe(String(c.tn));
      expect(await text('fpr')).toBe(`${((100 * c.fp) / (c.fp + c.tn)).toFixed(1)} %`);
      expect(await text('recall')).toBe(`${((100 * c.tp) / (c.tp + c.fn)).toFixed(1)} %`);
      expect(await page.locator('#grid .tile.ng').count()).toBe(c.ng);
      expect(await page.locator('#cmd-store').inputValue()).toBe(
        `kensa threshold --model ${join(dir, 'm.kensa')} --set ${value.toFixed(4)}`,
      );
    }
  });

  it('switches to Japanese, and back', async () => {
    await page.selectOption('#lang', 'ja');
    expect(await page.locator('header h1').innerText()).toContain('kensa 検査レポート');
    expect(await page.locator('html').getAttribute('lang')).toBe('ja');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.locator('#slider').evaluate((el: HTMLInputElement, v) => {
      el.value = String(v);
      el.dispatchEvent(new Event('input', { bubbles: true }));
    }, results.model.thresholds.fpr0);
    await page.waitForTimeout(100);
    await page.screenshot({ path: join(ARTIFACTS, 'report.png'), fullPage: false });
    expect(existsSync(join(ARTIFACTS, 'report.png'))).toBe(true);
    await page.selectOption('#lang', 'en');
    expect(await page.locator('header h1').innerText()).toContain('kensa inspection report');
  });

  it('review: an NG image marked good and an OK one marked NG give the list and the copy commands', async () => {
    await page.locator('#slider').evaluate((el: HTMLInputElement, v) => {
      el.value = String(v);
      el.dispatchEvent(new Event('input'));
    }, results.threshold);
    await page.waitForTimeout(100);
    const ng = page.locator('#grid .tile.ng').first();
    const ok = page.locator('#grid .tile.ok').first();
    const file = async (tile: typeof ng) => (await tile.locator('.cap').getAttribute('title'))!;
    const [ngFile, okFile] = [await file(ng), await file(ok)];
    await ng.locator('.mark').click();
    await ok.locator('.mark').click();
    // marking opens no figure
    expect(await page.locator('#modal').getAttribute('class')).not.toBe('open');
    expect(await page.locator('#review-list').inputValue()).toBe(`good\t${ngFile}\nng\t${okFile}`);
    const cmd = await page.locator('#cmd-review').inputValue();
    // a kensa test run knows its data set: the copies go to its train/good and test/NG (the folder names
    // it has: reviewFolders)
    const data = join(dir, 'data');
    expect(results.folders).toEqual({ good: 'good', ng: 'NG' });
    expect(cmd).toContain(`cp ${ngFile} ${data}/train/good/`);
    expect(cmd).toContain(`cp ${okFile} ${data}/test/NG/`);
    expect(await page.locator('#cmd-review-ps').inputValue()).toContain('Copy-Item -LiteralPath');
    expect(await page.locator('#review-note').innerText()).toContain('2 marked');
    // the update command adds the image marked good to the model: run as the page gives it
    const add = await page.locator('#cmd-update').inputValue();
    expect(add).toBe(`kensa update --model ${join(dir, 'm.kensa')} --add ${ngFile}`);
    expect(await page.locator('#cmd-update-ps').inputValue()).toBe(add);
    const updated = join(dir, 'reviewed.kensa');
    const r = spawnSync(
      'sh',
      ['-c', `${add.replace(/^kensa /, `"${process.execPath}" "${BIN}" `)} --out ${updated}`],
      {
        encoding: 'utf8',
        env: { ...process.env, KENSA_OFFLINE: '1' },
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('1 good image added');
    // a second click takes a mark back
    await ok.locator('.mark').click();
    expect(await page.locator('#review-list').inputValue()).toBe(`good\t${ngFile}`);
    await ng.locator('.mark').click();
  });

  it("review: the copies go into the data set's own folders (train/良品, test/不良)", async () => {
    const jp = join(dir, 'results-jp');
    mkdirSync(jp);
    writeFileSync(
      join(jp, 'results.json'),
      JSON.stringify({ ...results, folders: { good: '良品', ng: '不良' } }),
    );
    kensa('report', jp);
    const p = await browser.newPage({ locale: 'en-US' });
    try {
      await p.goto(pathToFileURL(join(jp, 'report.html')).href);
      await p.locator('#grid .tile.ng .mark').first().click();
      await p.locator('#grid .tile.ok .mark').first().click();
      const data = join(dir, 'data');
      const cmd = await p.locator('#cmd-review').inputValue();
      expect(cmd).toContain(`'${data}/train/良品'/`);
      expect(cmd).toContain(`'${data}/test/不良'/`);
      expect(await p.locator('#cmd-review-ps').inputValue()).toContain(`${data}/train/良品`);
    } finally {
      await p.close();
    }
  });

  it('opens an image’s five-panel figure on click', async () => {
    await page.locator('#grid .tile').first().click();
    await expect.poll(() => page.locator('#modal').getAttribute('class')).toBe('open');
    const src = await page.locator('#modal-img').getAttribute('src');
    expect(src).toMatch(/^figures\/.+\.png$/);
    expect(
      await page
        .locator('#modal-img')
        .evaluate((img: HTMLImageElement) => img.decode().then(() => img.naturalWidth)),
    ).toBeGreaterThan(0);
    await page.keyboard.press('Escape');
  });

  it('stays usable with 2,000 images: all tiles, lazy thumbnails, the slider still exact', async () => {
    const big = join(dir, 'big');
    mkdirSync(big, { recursive: true });
    const one = results.images[0];
    copyFileSync(join(dir, 'results', one.thumb), join(big, 'thumb.jpg'));
    const images = Array.from({ length: 2000 }, (_, i) => ({
      file: `/line/${i}.png`,
      name: `img${i}`,
      label: i % 4 === 0 ? 1 : 0,
      score: ((i * 7919) % 1000) / 10,
      regions: 0,
      thumb: 'thumb.jpg',
    }));
    images[0].name = '<i>odd</i> & "name"'; // shown as text, never as markup
    writeFileSync(
      join(big, 'results.json'),
      JSON.stringify({
        kind: 'test',
        model: { backbone: 'x', thresholds: { fpr0: 50 } },
        threshold: 50,
        images,
      }),
    );
    kensa('report', big);
    const p2 = await browser.newPage({ locale: 'ja-JP' });
    await p2.goto(pathToFileURL(join(big, 'report.html')).href);
    expect(await p2.locator('header h1').innerText()).toContain('検査レポート'); // the browser's language
    expect(await p2.locator('#grid .tile').count()).toBe(2000);
    expect(await p2.locator('#grid i').count()).toBe(0);
    expect(await p2.getByText('<i>odd</i> & "name"').count()).toBe(1);
    expect(await p2.locator('#grid img[loading="lazy"]').count()).toBe(2000);
    await p2.locator('#slider').evaluate((el: HTMLInputElement) => {
      el.value = '80';
      el.dispatchEvent(new Event('input', { bubbles: true }));
    });
    const chosen = Number(await p2.locator('#slider').evaluate((el: HTMLInputElement) => el.value)); // snapped to a step
    await p2.waitForFunction((v) => document.getElementById('t-value')!.textContent === v.toFixed(3), chosen);
    expect(await p2.locator('#n-ng').innerText()).toBe(
      String(images.filter((im) => im.score > chosen).length),
    );
    await p2.close();
  });

  it('kensa threshold --set stores the chosen value and predict then uses it', () => {
    kensa('threshold', '--model', join(dir, 'f1.kensa'), '--set', '12.5');
    const r = kensa(
      'predict',
      '--model',
      join(dir, 'f1.kensa'),
      '--out',
      join(dir, 'pred'),
      '--no-overlays',
      join(dir, 'data', 'test'),
    );
    expect(r.stdout).toContain('(threshold 12.500)');
    expect(kensa('threshold', '--model', join(dir, 'f1.kensa')).stdout).toMatch(/custom\s+12\.5/);
  });

  it("file names with '#' or '?' still show their pictures; commands quote a model path with a space, ';' or a quote", async () => {
    const odd = join(dir, 'odd');
    mkdirSync(odd, { recursive: true });
    copyFileSync(join(dir, 'data', 'test', 'good', '000.png'), join(odd, 'part #3?.png'));
    copyFileSync(join(dir, 'data', 'test', 'dust', '000.png'), join(odd, '100%.png'));
    const modelPath = join(dir, "my model; rm -rf ~ 'x'.kensa");
    copyFileSync(join(dir, 'm.kensa'), modelPath);
    kensa('predict', '--model', modelPath, '--out', join(dir, 'odd-out'), '--report', odd);
    const p3 = await browser.newPage({ locale: 'en-US' });
    await p3.goto(pathToFileURL(join(dir, 'odd-out', 'report.html')).href);
    const widths = await p3.evaluate(() =>
      Promise.all(
        [...document.querySelectorAll<HTMLImageElement>('#grid img')].map(async (img) => {
          img.loading = 'eager';
          await img.decode().catch(() => undefined);
          return img.naturalWidth;
        }),
      ),
    );
    expect(widths).toHaveLength(2);
    expect(widths.every((w) => w > 0)).toBe(true);
    const posix = await p3.locator('#cmd-store').inputValue();
    expect(posix).toMatch(/^kensa threshold --model '.*my model; rm -rf ~ '\\''x'\\''\.kensa' --set \d/);
    // the POSIX form, run by a shell, passes the path as one argument
    const echoed = spawnSync(
      'sh',
      ['-c', posix.replace(/^kensa threshold --model /, 'printf %s ').replace(/ --set .*$/, '')],
      {
        encoding: 'utf8',
      },
    );
    expect(echoed.stdout).toBe(modelPath);
    expect(await p3.locator('#ps-rows').isVisible()).toBe(true);
    expect(await p3.locator('#cmd-store-ps').inputValue()).toContain("'x''.kensa'");
    await p3.close();
  });

  it('the PowerShell command stays one argument when a name holds the typographic quotes PowerShell also ends strings with', async () => {
    // PowerShell ends a single-quoted string at ', ‘, ’, ‚ or ‛ (U+2018–U+201B) alike
    for (const [i, name] of ['x’;echo INJECTED;’.kensa', "a‘b‚c‛d'e’.kensa"].entries()) {
      const modelPath = join(dir, name);
      copyFileSync(join(dir, 'm.kensa'), modelPath);
      const out = join(dir, `ps-out-${i}`);
      kensa('predict', '--model', modelPath, '--out', out, '--report', join(dir, 'odd'));
      const page = await browser.newPage({ locale: 'en-US' });
      await page.goto(pathToFileURL(join(out, 'report.html')).href);
      const ps = await page.locator('#cmd-store-ps').inputValue();
      await page.close();
      const rest = ps.slice('kensa threshold --model '.length);
      const { value, end } = powershellVerbatim(rest);
      expect(value).toBe(modelPath);
      expect(rest.slice(end)).toMatch(/^ --set [\d.]+$/);
    }
  });
});

/**
 * A PowerShell verbatim (single-quoted) string at the start of `text`, read by the language's own rule:
 * any of ' ‘ ’ ‚ ‛ ends it, and two of them in a row stand for one. Returns its value and where it ends.
 */
function powershellVerbatim(text: string): { value: string; end: number } {
  const quote = (c: string | undefined) => c !== undefined && /['\u2018-\u201b]/.test(c);
  if (!quote(text[0])) throw new Error(`not a single-quoted string: ${text}`);
  let value = '';
  for (let i = 1; i < text.length; i++) {
    if (!quote(text[i])) value += text[i];
    else if (quote(text[i + 1])) value += text[++i];
    else return { value, end: i + 1 };
  }
  throw new Error(`unterminated string: ${text}`);
}
