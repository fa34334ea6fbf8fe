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
 * library takes them), `name=JSON` for one given on the command line, or `A+B` for variants scored
 * together (each measured as itself, then combined image by image: see `combine`).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { auroc } from '../src/metrics/classification.js';
import type { TrainOptions } from '../src/pipeline/verbs/train.js';

const here = new URL('.', import.meta.url).pathname;
const shared = resolve(here, '../../shared/datasets');
const DATA: Record<string, string> = { mtd: join(shared, 'mtd'), mpdd: join(shared, 'mpdd_metal_plate') };

/** The variants, as the library's train options (the data folder and output are added per run). */
export const VARIANTS: Record<string, Partial<TrainOptions>> = {
  // the default for new models (ensemble at this commit; earlier rows named patchcore were the default then)
  default: {},
  patchcore: { method: 'patchcore' },
  padim: { method: 'padim', preprocess: { mode: 'resize', size: 224 } },
  'patchcore-kfold': { method: 'patchcore', folds: 5 },
  // PatchCore on PaDiM's square input: what one backbone pass feeding both methods would see
  'patchcore-square': { method: 'patchcore', preprocess: { mode: 'resize', size: 224 } },
  'padim-kfold': { method: 'padim', preprocess: { mode: 'resize', size: 224 }, folds: 5 },
  // PatchCore and PaDiM scored together on one backbone pass (--method ensemble; PaDiM needs one input size)
  ensemble: { method: 'ensemble', preprocess: { mode: 'resize', size: 224 } },
  // the same with the aspect kept (images of several sizes: PaDiM's features resampled to one grid)
  'ensemble-fit': { method: 'ensemble' },
  // backbones available offline (issue 22): the larger EfficientNet-Lite weights
  'patchcore-lite1': { method: 'patchcore', backbone: 'efficientnet_lite1' },
  'patchcore-lite2': { method: 'patchcore', backbone: 'efficientnet_lite2' },
  'padim-lite2': {
    method: 'padim',
    backbone: 'efficientnet_lite2',
    preprocess: { mode: 'resize', size: 224 },
  },
  // image score: the largest patch distance itself instead of anomalib's re-weighting of it
  'patchcore-max': { method: 'patchcore', neighbors: 1 },
  // resolution, aspect kept
  'patchcore-320': { method: 'patchcore', preprocess: { mode: 'fit', size: 320 } },
  'patchcore-448': { method: 'patchcore', preprocess: { mode: 'fit', size: 448 } },
  // 320 px with the bank of a 224-pixel model (~80 rows per image): the resolution without its search time
  'patchcore-320-lean': { method: 'patchcore', preprocess: { mode: 'fit', size: 320 }, coreset: 0.05 },
};

const { values } = parseArgs({
  options: {
    data: { type: 'string', default: 'mtd,mpdd' },
    variants: { type: 'string', default: 'default,patchcore,padim' },
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
type Result = Record<string, unknown>;
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

type Variant = { name: string; options: Partial<TrainOptions> };
type Listed = Variant | { name: string; members: Variant[] };
const given = new Map<string, Variant>();
function variant(v: string): Variant {
  const eq = v.indexOf('=');
  if (eq > 0) {
    const named = { name: v.slice(0, eq), options: JSON.parse(v.slice(eq + 1)) as Partial<TrainOptions> };
    given.set(named.name, named);
    return named;
  }
  const known = given.get(v) ?? (VARIANTS[v] ? { name: v, options: VARIANTS[v] } : undefined);
  if (!known)
    throw new Error(
      `unknown variant '${v}'; known: ${[...given.keys(), ...Object.keys(VARIANTS)].join(', ')}`,
    );
  return known;
}
// `A+B`: the variants scored together (each run as itself, then combined; see `combine`)
const variants: Listed[] = topLevel(values.variants!).map((v) =>
  !v.includes('=') && v.includes('+') ? { name: v, members: v.split('+').map(variant) } : variant(v),
);
const sets = values
  .data!.split(',')
  .map((d) => ({ name: DATA[d] ? d : basename(d), path: DATA[d] ?? resolve(d) }));

const work = mkdtempSync(join(tmpdir(), 'kensa-accuracy-'));
const measured = new Map<string, Result>();
/** One variant's result on one set: read back when measured at this commit, else run in its own process. */
function measure(set: { name: string; path: string }, v: Variant): Result {
  const key = JSON.stringify([version, set.path, v.options]);
  let r = measured.get(key) ?? (values.rerun || version.endsWith('+changes') ? undefined : store[key]);
  if (r) {
    if (!measured.has(key)) console.error(`${set.name} / ${v.name}: measured at ${version}, read back`);
  } else {
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
  }
  measured.set(key, r);
  return r;
}

type Scores = { calibration: Record<string, number>; test: [string, 0 | 1, number][] };
/**
 * Variants scored together, at the image level: each member's score becomes a z-score against its own
 * calibration scores (their mean and standard deviation over the training images), and the image's
 * score is the mean of its members'. fpr0 is the highest combined calibration score of the training
 * images every member scored, as train sets it for one model. Maps are not combined here (pixel AUROC,
 * AUPRO and the median ratio n/a); times and model sizes are the members' sums, peak RSS the largest.
 */
function combine(members: Result[]): Result {
  const failed = members.find((r) => r.error);
  if (failed) return { error: `a member failed: ${failed.error}` };
  const scores = members.map((r) => r.scores as unknown as Scores | undefined);
  if (scores.some((s) => !s)) return { error: 'a member was measured before scores were kept; --rerun' };
  const z = scores.map((s) => {
    const v = Object.values(s!.calibration);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length) || 1;
    return (x: number) => (x - mean) / sd;
  });
  const joint = (values: (number | undefined)[]) =>
    values.some((v) => v === undefined)
      ? undefined
      : values.reduce<number>((a, v, i) => a + z[i](v!), 0) / values.length;
  const calibration = Object.keys(scores[0]!.calibration)
    .map((file) => joint(scores.map((s) => s!.calibration[file])))
    .filter((v): v is number => v !== undefined);
  const byFile = scores.map((s) => new Map(s!.test.map(([file, , score]) => [file, score])));
  const test = scores[0]!.test.map(([file, label]) => ({
    label,
    score: joint(byFile.map((m) => m.get(file)))!,
  }));
  if (test.some((t) => t.score === undefined) || calibration.length === 0)
    return { error: 'the members scored different images' };
  const fpr0 = Math.max(...calibration);
  const good = test.filter((t) => t.label === 0).map((t) => t.score);
  const defective = test.filter((t) => t.label === 1).map((t) => t.score);
  const highestGood = Math.max(...good);
  const sum = (k: string) => members.reduce((a, r) => a + (r[k] as number), 0);
  return {
    image_auroc: auroc(
      test.map((t) => t.score),
      test.map((t) => t.label),
    ).value,
    pixel_auroc: null,
    aupro: null,
    recall_fpr0: defective.filter((s) => s > fpr0).length / Math.max(1, defective.length),
    false_alarms_fpr0: good.filter((s) => s > fpr0).length,
    good: good.length,
    above_every_good: defective.filter((s) => s > highestGood).length / Math.max(1, defective.length),
    // z-scores centre on 0: a ratio of their medians says nothing
    median_ratio: null,
    train_s: sum('train_s'),
    calibration_s: sum('calibration_s'),
    test_s: sum('test_s'),
    peak_rss_mb: Math.max(...members.map((r) => r.peak_rss_mb as number)),
    model_mb: sum('model_mb'),
  };
}

const rows: { set: string; variant: string; r: Result }[] = [];
for (const set of sets) {
  if (!existsSync(set.path)) {
    console.error(`${set.name}: ${set.path} is absent; skipped`);
    continue;
  }
  for (const v of variants) {
    const r = 'members' in v ? combine(v.members.map((m) => measure(set, m))) : measure(set, v);
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
