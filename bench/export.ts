/**
 * Time per image of an exported model, in one run on the same images:
 *   - kensa predict (end to end per image, model loading excluded: its scoring rate)
 *   - the ONNX graph in onnxruntime-node (2 threads), one image per call
 *   - the web export in Chromium (Playwright, headless): onnxruntime-web WASM on 2 threads (the folder served
 *     over 127.0.0.1 with the cross-origin-isolation headers threads need) and on 1 thread from file://
 * The browser's time is the graph's (session.run), as is onnxruntime-node's. Prints a Markdown table for
 * BENCHMARKS.md; writes bench/out/export.json.
 *
 *   npm run build
 *   npx tsx bench/export.ts --model MODEL [--data ../shared/datasets/mtd] [--images 40]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { chromium } from 'playwright-core';
import { Inspector } from '../src/pipeline/engine/inspector.js';
import { loadModel } from '../src/pipeline/contracts/model-file.js';

const here = new URL('.', import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string', default: resolve(here, '../../shared/datasets/mtd') },
    images: { type: 'string', default: '40' },
  },
});
if (!values.model) throw new Error('--model is required (a model trained on --data)');
const cli = resolve(here, '../dist/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'kensa-bench-export-'));
const test = join(resolve(values.data!), 'test');
const types = readdirSync(test).sort();
const per = Math.ceil(Number(values.images) / types.length);
const files = types.flatMap((t) =>
  readdirSync(join(test, t))
    .sort()
    .slice(0, per)
    .map((f) => join(test, t, f)),
);
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

const web = join(work, 'web');
execFileSync(process.execPath, [cli, 'export', '--model', values.model, '--out', web, '--format', 'web'], {
  stdio: 'inherit',
});
const onnxFile = join(web, 'model.onnx');

// kensa predict's scoring rate (model and backbone already loaded: the Inspector, as predict uses it)
const model = await loadModel(values.model);
const inspector = await Inspector.open(model);
const inputs: { rgb: Uint8Array; h: number; w: number }[] = [];
const predictMs: number[] = [];
let last = performance.now();
for await (const s of inspector.score(
  files.map((path) => ({ path })),
  { batch: 1 },
)) {
  const now = performance.now();
  predictMs.push(now - last);
  last = now;
  inputs.push({ rgb: s.image.rgb, h: s.image.geometry.inputHeight, w: s.image.geometry.inputWidth });
}
await inspector.dispose();

// onnxruntime-node, 2 threads
const session = await ort.InferenceSession.create(onnxFile, { intraOpNumThreads: 2 });
const nodeMs: number[] = [];
for (const x of inputs.slice(0, 2))
  await session.run({ image: new ort.Tensor('uint8', x.rgb, [1, x.h, x.w, 3]) });
for (const x of inputs) {
  const t0 = performance.now();
  await session.run({ image: new ort.Tensor('uint8', x.rgb, [1, x.h, x.w, 3]) });
  nodeMs.push(performance.now() - t0);
}
await session.release();

// the browser: served with COOP/COEP (threads), and from file:// (one thread)
const types_: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
};
const server = createServer((req, res) => {
  const file = join(web, decodeURIComponent((req.url ?? '/').split('?')[0]).replace(/^\/$/, '/index.html'));
  try {
    const body = readFileSync(file);
    res.writeHead(200, {
      'content-type': types_[extname(file)] ?? 'application/octet-stream',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as { port: number }).port;
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
async function inBrowser(url: string) {
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForSelector('body[data-ready], body[data-failed]', { timeout: 120_000 });
  const threads = await page.evaluate(() => (window as unknown as { KENSA_THREADS: number }).KENSA_THREADS);
  // two warm-up images, then the timed ones
  await page.setInputFiles('#files', files.slice(0, 2));
  await page.waitForSelector('body[data-done="2"]', { timeout: 120_000 });
  await page.setInputFiles('#files', files);
  await page.waitForSelector(`body[data-done="${files.length + 2}"]`, { timeout: 600_000 });
  const ms = await page.$$eval('.result', (b) => b.slice(2).map((e) => Number(e.getAttribute('data-ms'))));
  await page.close();
  return { threads, ms };
}
const served = await inBrowser(`http://127.0.0.1:${port}/index.html?threads=2`);
const fileUrl = await inBrowser(`file://${join(web, 'index.html')}`);
await browser.close();
server.close();

const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
const out = {
  commit,
  machine: `${cpus()[0].model}, ${cpus().length} cores`,
  model: values.model,
  method: model.meta.method,
  images: files.length,
  onnx_mb: statSync(onnxFile).size / 1e6,
  median_ms: {
    kensa_predict: median(predictMs),
    onnxruntime_node_2_threads: median(nodeMs),
    browser_wasm_served: median(served.ms),
    browser_wasm_file: median(fileUrl.ms),
  },
  browser_threads: { served: served.threads, file: fileUrl.threads },
};
mkdirSync(join(here, 'out'), { recursive: true });
writeFileSync(join(here, 'out', 'export.json'), JSON.stringify(out, null, 2) + '\n');
console.log(
  `\n${files.length} MTD test images, ${out.machine}, commit ${commit}, ${out.method}, graph ${out.onnx_mb.toFixed(1)} MB\n`,
);
console.log('| runtime | threads | median ms per image |');
console.log('|---|---|---|');
console.log(`| kensa predict (scoring, batch 1) | 2 | ${out.median_ms.kensa_predict.toFixed(0)} |`);
console.log(
  `| onnxruntime-node, exported graph | 2 | ${out.median_ms.onnxruntime_node_2_threads.toFixed(0)} |`,
);
console.log(
  `| Chromium, onnxruntime-web WASM (served, cross-origin isolated) | ${served.threads} | ${out.median_ms.browser_wasm_served.toFixed(0)} |`,
);
console.log(
  `| Chromium, onnxruntime-web WASM (file://) | ${fileUrl.threads} | ${out.median_ms.browser_wasm_file.toFixed(0)} |`,
);
