/**
 * Developer tool: a screenshot of a report.html (for the README), with Debian's Chromium.
 *
 *   npx tsx tools/screenshot-report.ts RESULTS/report.html docs/report.png [--lang en|ja] [--threshold N]
 */
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { chromium } from 'playwright-core';

const [html, out, ...rest] = process.argv.slice(2);
const opt = (name: string) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : undefined;
};
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const page = await browser.newPage({
  locale: opt('lang') === 'ja' ? 'ja-JP' : 'en-US',
  viewport: { width: 1280, height: 1000 },
});
await page.goto(pathToFileURL(resolve(html)).href);
const t = opt('threshold');
if (t)
  await page.evaluate(
    (v) =>
      (window as unknown as { kensaReport: { setThreshold(v: number): void } }).kensaReport.setThreshold(v),
    Number(t),
  );
await page.waitForTimeout(300);
await page.screenshot({ path: out, fullPage: false });
await browser.close();
