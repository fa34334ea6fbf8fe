/**
 * Both methods end to end on a real data set, against the public PyTorch references, in one run: kensa's
 * PaDiM and PatchCore (train with its calibration, then test) and ../shared/reference/padim_reference.py
 * (--mode fast) and patchcore_reference.py, with the same weights and preprocessing (a square resize, as
 * the references do it). Prints a Markdown table for BENCHMARKS.md and writes bench/out/mtd.json.
 *
 *   npx tsx bench/mtd.ts --python /path/to/venv/bin/python [--data ../shared/datasets/mtd]
 *                        [--size 224] [--runs kensa-padim,kensa-patchcore,ref-padim,ref-patchcore]
 *                        ["--extra-kensa=--val-fraction 0.1"]   (the = form: the value starts with a dash)
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { referenceArgs, referenceWeights } from './reference-weights.js';

const here = new URL('.', import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    python: { type: 'string', default: 'python3' },
    data: { type: 'string', default: resolve(here, '../../shared/datasets/mtd') },
    references: { type: 'string', default: resolve(here, '../../shared/reference') },
    size: { type: 'string', default: '224' },
    runs: { type: 'string', default: 'kensa-padim,kensa-patchcore,ref-padim,ref-patchcore' },
    backbone: { type: 'string', default: 'efficientnet_lite0' },
    'extra-kensa': { type: 'string', default: '' },
  },
});
const work = mkdtempSync(join(tmpdir(), 'kensa-bench-mtd-'));
const { spec, pth } = await referenceWeights(values.backbone!, work);
const size = values.size!;

type Outcome = Record<string, unknown> & { wall_s: number; error?: string };

function kensaRun(method: string): Outcome {
  const start = performance.now();
  const extra = values['extra-kensa']!.split(' ').filter(Boolean);
  const args = [
    join(here, 'mtd-kensa.ts'),
    '--data',
    values.data!,
    '--out',
    join(work, `kensa-${method}`),
    '--method',
    method,
    '--size',
    size,
    '--square',
    '--backbone',
    spec.name,
    ...extra,
  ];
  const out = execFileSync('npx', ['tsx', ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  return { ...JSON.parse(out.trim().split('\n').at(-1)!), wall_s: (performance.now() - start) / 1000 };
}

/** One run of a reference; a failure is recorded (with the last line it printed), not fatal. */
function referenceRun(method: string): Outcome {
  const out = join(work, `reference-${method}.json`);
  const start = performance.now();
  const args = referenceArgs({
    references: values.references!,
    method,
    data: values.data!,
    backbone: spec.name,
    pth,
    size,
    out,
  });
  try {
    execFileSync(values.python!, args, { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 28 });
  } catch (error) {
    const lines = String((error as { stderr?: Buffer }).stderr ?? '')
      .split('\n')
      .filter((l) => l.trim());
    return { error: lines.slice(-1).join(' ').slice(0, 300), wall_s: (performance.now() - start) / 1000 };
  }
  const r = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
  delete r.scores;
  return { ...r, wall_s: (performance.now() - start) / 1000 };
}

const results: Record<string, Outcome> = {};
for (const run of values.runs!.split(',')) {
  const [who, method] = run.split('-');
  console.error(`${run} ...`);
  results[run] = who === 'kensa' ? kensaRun(method) : referenceRun(method);
}

const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical cores, Node ${process.version}`;
mkdirSync(join(here, 'out'), { recursive: true });
writeFileSync(
  join(here, 'out', 'mtd.json'),
  JSON.stringify({ machine, data: values.data, size, results }, null, 2),
);

const f = (v: unknown, digits = 4) => (typeof v === 'number' ? v.toFixed(digits) : 'n/a');
const total = (r: Outcome) =>
  (r.total_s as number | undefined) ?? (r.timings_s as { total?: number } | undefined)?.total;
console.log(
  `Machine: ${machine}. Data: ${values.data}; backbone ${spec.name}, ${size}×${size} square resize.\n`,
);
console.log(
  '| run | total (s) | image AUROC | pixel AUROC | AUPRO | FPR on test/good at fpr0 | model (MB) | peak RSS (MB) |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const [run, r] of Object.entries(results)) {
  if (r.error) {
    console.log(`| ${run} | failed: ${r.error} | | | | | | |`);
    continue;
  }
  const m = (r.metrics ?? r) as Record<string, unknown>;
  const at = r.at_fpr0 as { fpr?: number } | undefined;
  console.log(
    `| ${run} | ${f(total(r), 1)} | ${f(m.image_auroc)} | ${f(m.pixel_auroc)} | ${f(m.aupro)} | ${at ? f(at.fpr, 3) : ''} | ${r.model_bytes ? f((r.model_bytes as number) / 1e6, 1) : ''} | ${f(r.peak_rss_mb, 0)} |`,
  );
}
for (const method of ['padim', 'patchcore']) {
  const k = results[`kensa-${method}`];
  const ref = results[`ref-${method}`];
  if (k && ref && !k.error && !ref.error) {
    const km = k.metrics as Record<string, number>;
    console.log(
      `\n${method}: kensa ${f(total(k), 1)} s vs reference ${f(total(ref), 1)} s = ${(total(ref)! / total(k)!).toFixed(2)}× faster; ` +
        `image AUROC ${(km.image_auroc - (ref.image_auroc as number)).toFixed(4)}, pixel AUROC ${(km.pixel_auroc - (ref.pixel_auroc as number)).toFixed(4)} (kensa − reference)`,
    );
  }
}
for (const [run, r] of Object.entries(results)) {
  if (!r.error)
    console.log(
      `${run} phases (s): ${JSON.stringify(r.train_timings_s ?? r.timings_s)}${r.test_timings_s ? ` test ${JSON.stringify(r.test_timings_s)}` : ''}`,
    );
}
