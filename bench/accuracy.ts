/**
 * The accuracy bench: named variants of train + test over data sets, one table. Each variant runs in its
 * own process (bench/accuracy-run.ts) and its result is kept in bench/out/accuracy.json under the commit,
 * the data set and the variant's options, so that a variant already measured at this commit is read
 * back, not run again (a run cut short resumes where it stopped).
 *
 *   npx tsx bench/accuracy.ts [--data mtd,mpdd,/path/to/set] [--variants patchcore,padim,...]
 *                             [--append BENCHMARKS.md] [--title "..."] [--rerun]
 *
 * Data: `mtd` and `mpdd` are ../shared/datasets/mtd and ../shared/datasets/mpdd_metal_plate; any other
 * value is a folder in the MVTec layout. Variants: the names in VARIANTS below (TrainOptions as the
 * library takes them), or `name=JSON` for one given on the command line.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { TrainOptions } from '../src/pipeline/verbs/train.js';

const here = new URL('.', import.meta.url).pathname;
const shared = resolve(here, '../../shared/datasets');
const DATA: Record<string, string> = { mtd: join(shared, 'mtd'), mpdd: join(shared, 'mpdd_metal_plate') };

/** The variants, as the library's train options (the data folder and output are added per run). */
export const VARIANTS: Record<string, Partial<TrainOptions>> = {
  patchcore: {},
  padim: { method: 'padim', preprocess: { mode: 'resize', size: 224 } },
  'patchcore-kfold': { folds: 5 },
  'padim-kfold': { method: 'padim', preprocess: { mode: 'resize', size: 224 }, folds: 5 },
  // backbones available offline (issue 22): the larger EfficientNet-Lite weights
  'patchcore-lite1': { backbone: 'efficientnet_lite1' },
  'patchcore-lite2': { backbone: 'efficientnet_lite2' },
  'padim-lite2': {
    method: 'padim',
    backbone: 'efficientnet_lite2',
    preprocess: { mode: 'resize', size: 224 },
  },
  // image score: the largest patch distance itself instead of anomalib's re-weighting of it
  'patchcore-max': { neighbors: 1 },
  // resolution, aspect kept
  'patchcore-320': { preprocess: { mode: 'fit', size: 320 } },
  'patchcore-448': { preprocess: { mode: 'fit', size: 448 } },
  // 320 px with the bank of a 224-pixel model (~80 rows per image): the resolution without its search time
  'patchcore-320-lean': { preprocess: { mode: 'fit', size: 320 }, coreset: 0.05 },
};

const { values } = parseArgs({
  options: {
    data: { type: 'string', default: 'mtd,mpdd' },
    variants: { type: 'string', default: 'patchcore,padim' },
    append: { type: 'string' },
    title: { type: 'string', default: 'Accuracy of variants' },
    rerun: { type: 'boolean', default: false },
  },
});

const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
  encoding: 'utf8',
}).trim();
const version = dirty ? `${commit}+changes` : commit;
const storeFile = join(here, 'out', 'accuracy.json');
mkdirSync(join(here, 'out'), { recursive: true });
type Result = Record<string, number | string | null>;
const store: Record<string, Result> = existsSync(storeFile)
  ? (JSON.parse(readFileSync(storeFile, 'utf8')) as Record<string, Result>)
  : {};

/** Splits at the commas outside braces (a `name=JSON` variant has commas of its own). */
function topLevel(list: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    if (list[i] === '{') depth++;
    else if (list[i] === '}') depth--;
    else if (list[i] === ',' && depth === 0) {
      parts.push(list.slice(start, i));
      start = i + 1;
    }
  }
  return [...parts, list.slice(start)].filter(Boolean);
}

const variants = topLevel(values.variants!).map((v) => {
  const eq = v.indexOf('=');
  if (eq > 0) return { name: v.slice(0, eq), options: JSON.parse(v.slice(eq + 1)) as Partial<TrainOptions> };
  if (!VARIANTS[v]) throw new Error(`unknown variant '${v}'; known: ${Object.keys(VARIANTS).join(', ')}`);
  return { name: v, options: VARIANTS[v] };
});
const sets = values
  .data!.split(',')
  .map((d) => ({ name: DATA[d] ? d : basename(d), path: DATA[d] ?? resolve(d) }));

const work = mkdtempSync(join(tmpdir(), 'kensa-accuracy-'));
const rows: { set: string; variant: string; r: Result }[] = [];
for (const set of sets) {
  if (!existsSync(set.path)) {
    console.error(`${set.name}: ${set.path} is absent; skipped`);
    continue;
  }
  for (const v of variants) {
    const key = JSON.stringify([version, set.path, v.options]);
    let r = values.rerun || version.endsWith('+changes') ? undefined : store[key];
    if (!r) {
      console.error(`${set.name} / ${v.name} ...`);
      const out = join(work, `${set.name}-${v.name}`);
      const run = spawnSync(
        'npx',
        [
          'tsx',
          join(here, 'accuracy-run.ts'),
          '--data',
          set.path,
          '--out',
          out,
          '--options',
          JSON.stringify(v.options),
        ],
        { encoding: 'utf8', maxBuffer: 1 << 26 },
      );
      if (run.status !== 0) {
        console.error(run.stderr.split('\n').slice(-8).join('\n'));
        r = { error: run.stderr.trim().split('\n').at(-1) ?? 'failed' };
      } else {
        r = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Result;
        store[key] = r;
        writeFileSync(storeFile, JSON.stringify(store, null, 1));
      }
    } else console.error(`${set.name} / ${v.name}: measured at ${version}, read back`);
    rows.push({ set: set.name, variant: v.name, r });
  }
}

const f = (v: unknown, digits = 4) => (typeof v === 'number' ? v.toFixed(digits) : 'n/a');
const pct = (v: unknown) => (typeof v === 'number' ? `${(100 * v).toFixed(1)} %` : 'n/a');
const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`;
const lines = [
  `### ${values.title}`,
  '',
  `Command: \`npx tsx bench/accuracy.ts --data ${values.data} --variants ${values.variants}\`; commit ${version}, ${new Date().toISOString().slice(0, 10)}; ${machine}.`,
  '',
  '| data | variant | image AUROC | pixel AUROC | AUPRO | recall at fpr0 | false alarms at fpr0 | above every good | calibration median / test-good median | train (s) | calibration (s) | test (s) | peak RSS (MB) | model (MB) |',
  '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map(({ set, variant, r }) =>
    r.error
      ? `| ${set} | ${variant} | failed: ${r.error} |||||||||||`
      : `| ${set} | ${variant} | ${f(r.image_auroc)} | ${f(r.pixel_auroc)} | ${f(r.aupro)} | ${pct(r.recall_fpr0)} | ${r.false_alarms_fpr0}/${r.good} | ${pct(r.above_every_good)} | ${f(r.median_ratio, 3)} | ${f(r.train_s, 1)} | ${f(r.calibration_s, 1)} | ${f(r.test_s, 1)} | ${f(r.peak_rss_mb, 0)} | ${f(r.model_mb, 1)} |`,
  ),
  '',
];
console.log(lines.join('\n'));
if (values.append) appendFileSync(values.append, `\n${lines.join('\n')}`);
