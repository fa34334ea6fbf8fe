/**
 * Load test of `kensa serve` on MTD's test images, beside `kensa predict` on the same images in the same
 * run. autocannon (closed loop: each client sends its next image when the last is answered) at 1, 4 and
 * 16 clients for --duration seconds each: answers per second, p50/p95/p99 latency (from every answer's
 * own time), errors and non-200 answers, the service's RSS before and after each run (growth would be a
 * leak; measured from after one unloaded pass over every image, which also checks the verdicts). During
 * the 16-client run a separate client sends every image once and compares the verdict and score with
 * kensa predict's. Then overload (more clients than the queue holds): 503s, no crash, and
 * recovery at one client afterwards. Prints a Markdown table for BENCHMARKS.md; writes bench/out/serve.json.
 *
 *   npm run build
 *   npx tsx bench/serve.ts [--data ../shared/datasets/mtd] [--model FILE (else trained here)]
 *       [--duration 60] [--clients 1,4,16] [--overload 96] [--queue 32] [--max-batch 8]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';

const here = new URL('.', import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    data: { type: 'string', default: resolve(here, '../../shared/datasets/mtd') },
    model: { type: 'string' },
    duration: { type: 'string', default: '60' },
    clients: { type: 'string', default: '1,4,16' },
    overload: { type: 'string', default: '96' },
    queue: { type: 'string', default: '32' },
    'max-batch': { type: 'string', default: '8' },
  },
});
const cli = resolve(here, '../dist/cli/main.js');
const data = resolve(values.data!);
const work = mkdtempSync(join(tmpdir(), 'kensa-bench-serve-'));
const duration = Number(values.duration);
const seconds = (t0: number) => (performance.now() - t0) / 1000;

const kensa = (...args: string[]) =>
  execFileSync(process.execPath, [cli, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });

let model = values.model;
let trainSeconds: number | undefined;
if (!model) {
  model = join(work, 'model.kensa');
  const t0 = performance.now();
  kensa('train', '--data', data, '--out', model);
  trainSeconds = seconds(t0);
}

const testDir = join(data, 'test');
const files = readdirSync(testDir)
  .sort()
  .flatMap((type) =>
    readdirSync(join(testDir, type))
      .sort()
      .map((f) => join(testDir, type, f)),
  );
const bodies = files.map((f) => readFileSync(f));

// kensa predict on the same images: end to end (model and backbone loading included), no overlays
const predictOut = join(work, 'predict');
const t1 = performance.now();
kensa('predict', '--model', model, '--out', predictOut, '--no-overlays', testDir);
const predictSeconds = seconds(t1);
const predicted = new Map<string, { verdict: string; score: number }>(
  JSON.parse(readFileSync(join(predictOut, 'predictions.json'), 'utf8')).predictions.map(
    (p: { file: string; verdict: string; score: number }) => [resolve(p.file), p],
  ),
);

// the service
const child = spawn(
  process.execPath,
  [
    cli,
    'serve',
    '--model',
    model,
    '--port',
    '0',
    '--queue',
    values.queue!,
    '--max-batch',
    values['max-batch']!,
  ],
  { stdio: ['ignore', 'ignore', 'pipe'] },
);
let log = '';
child.stderr!.on('data', (d) => (log += d));
let crashed = false;
child.on('exit', () => (crashed = true));
const url = await new Promise<string>((ok, fail) => {
  const timer = setInterval(() => {
    const m = /listening on (\S+)/.exec(log);
    if (m && log.includes('ready:')) ok(m[1]);
    if (crashed) fail(new Error(log));
    if ((m && log.includes('ready:')) || crashed) clearInterval(timer);
  }, 100);
});
const rssMb = (field: 'VmRSS' | 'VmHWM') => {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
};

interface Run {
  clients: number;
  seconds: number;
  answers: number;
  images_per_s: number;
  errors: number;
  statuses: Record<string, number>;
  latency_ms: { p50: number; p95: number; p99: number; max: number };
  rss_mb_before: number;
  rss_mb_after: number;
}

const quantile = (sorted: number[], q: number) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;

async function load(clients: number, secs: number): Promise<Run> {
  const latencies: number[] = [];
  const rss_mb_before = rssMb('VmRSS');
  const result = await autocannon({
    url: `${url}/v1/inspect`,
    connections: clients,
    duration: secs,
    timeout: 60,
    requests: bodies.map((body) => ({ method: 'POST', body, headers: { 'content-type': 'image/jpeg' } })),
    setupClient: (client) =>
      client.on('response', (status: number, _bytes: number, ms: number) => {
        if (status === 200) latencies.push(ms);
      }),
  });
  latencies.sort((a, b) => a - b);
  const statuses = Object.fromEntries(
    Object.entries(result.statusCodeStats ?? {}).map(([code, s]) => [code, s?.count ?? 0]),
  );
  const answers = statuses['200'] ?? 0;
  return {
    clients,
    seconds: result.duration,
    answers,
    images_per_s: answers / result.duration,
    errors: result.errors + result.timeouts,
    statuses,
    latency_ms: {
      p50: quantile(latencies, 0.5),
      p95: quantile(latencies, 0.95),
      p99: quantile(latencies, 0.99),
      max: latencies.at(-1) ?? NaN,
    },
    rss_mb_before,
    rss_mb_after: rssMb('VmRSS'),
  };
}

/** Every image once, one at a time, compared with kensa predict's verdict and score. */
async function verify(): Promise<{
  images: number;
  verdicts_equal: number;
  max_relative_score_difference: number;
}> {
  let equal = 0;
  let worst = 0;
  for (let i = 0; i < files.length; i++) {
    const r = await fetch(`${url}/v1/inspect`, { method: 'POST', body: bodies[i] });
    const a = (await r.json()) as { verdict: string; score: number };
    const p = predicted.get(resolve(files[i]))!;
    if (a.verdict === p.verdict) equal++;
    worst = Math.max(worst, Math.abs(a.score - p.score) / Math.abs(p.score));
  }
  return { images: files.length, verdicts_equal: equal, max_relative_score_difference: worst };
}

// every image once, unloaded: the verdicts, and every image shape seen (onnxruntime keeps buffers per
// shape), so that RSS from here on shows growth, not warm-up
const unloaded = await verify();
const rssStart = rssMb('VmRSS');
const runs: Run[] = [];
const clientCounts = values.clients!.split(',').map(Number);
let underLoad: Awaited<ReturnType<typeof verify>> | undefined;
for (const c of clientCounts) {
  console.error(`load: ${c} client(s) for ${duration} s`);
  if (c === Math.max(...clientCounts)) {
    const [run, check] = await Promise.all([load(c, duration), verify()]);
    runs.push(run);
    underLoad = check;
  } else runs.push(await load(c, duration));
}
const overloadClients = Number(values.overload);
console.error(`overload: ${overloadClients} clients (queue ${values.queue}) for 20 s`);
const overload = await load(overloadClients, 20);
await new Promise((r) => setTimeout(r, 2000));
const recovery = await load(1, 10);
const ready = (await fetch(`${url}/readyz`)).status;
const rssEnd = rssMb('VmRSS');
const rssPeak = rssMb('VmHWM');
child.kill('SIGTERM');
const exitCode = await new Promise<number | null>((r) => child.on('exit', (code) => r(code)));

const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
const out = {
  commit,
  machine: `${cpus()[0].model}, ${cpus().length} cores`,
  data,
  images: files.length,
  train_s: trainSeconds,
  predict: { seconds: predictSeconds, images_per_s: files.length / predictSeconds },
  runs,
  unloaded,
  under_load: underLoad,
  overload,
  recovery,
  ready_after: ready,
  rss_mb: { start: rssStart, end: rssEnd, peak: rssPeak },
  sigterm_exit_code: exitCode,
  crashed: crashed && exitCode !== 0,
};
mkdirSync(join(here, 'out'), { recursive: true });
writeFileSync(join(here, 'out', 'serve.json'), JSON.stringify(out, null, 2) + '\n');

const f = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : '—');
const row = (name: string, r: Run) =>
  `| ${name} | ${r.clients} | ${f(r.images_per_s, 2)} | ${f(r.latency_ms.p50, 0)} | ${f(r.latency_ms.p95, 0)} | ${f(r.latency_ms.p99, 0)} | ${r.errors} | ${Object.entries(
    r.statuses,
  )
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ')} | ${f(r.rss_mb_before, 0)} → ${f(r.rss_mb_after, 0)} |`;
console.log(`\n${files.length} MTD test images, ${out.machine}, commit ${commit}\n`);
console.log(
  `kensa predict (same images, end to end): ${f(predictSeconds)} s, ${f(out.predict.images_per_s, 2)} images/s\n`,
);
console.log(
  '| run | clients | images/s | p50 ms | p95 ms | p99 ms | errors | answers | RSS MB before → after |',
);
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of runs) console.log(row('load', r));
console.log(row('overload', overload));
console.log(row('recovery', recovery));
console.log(
  `\nunloaded: ${unloaded.verdicts_equal}/${unloaded.images} verdicts equal to kensa predict's; ` +
    `under load: ${underLoad?.verdicts_equal}/${underLoad?.images} verdicts equal to kensa predict's, ` +
    `largest relative score difference ${underLoad?.max_relative_score_difference.toExponential(1)}; ` +
    `RSS ${f(rssStart, 0)} MB after a first pass over every image, ${f(rssEnd, 0)} MB at the end, peak ${f(rssPeak, 0)} MB; ` +
    `/readyz after overload ${ready}; SIGTERM exit code ${exitCode}`,
);
