/**
 * kensa watch: the line's loop. Inspects every image that appears in a drop folder (a camera's or a PLC's),
 * each once, when its file is complete, and appends its result to the results folder — until stopped.
 *
 *   complete    a file is taken once its size and modification time have not changed for `settleMs`
 *               (a camera still writing it is waited for); names a writer uses while writing (`.x.png`,
 *               `x.png.part`, `.tmp`, `.crdownload`) are left until they are renamed into place
 *   once        every result goes first into a journal (`watch.jsonl`: the file, its size and time, the
 *               result); a restart reads it back, so a file is neither inspected twice nor missed, and
 *               the CSV files are written again from it (a crash between two appends leaves no trace)
 *   results     predictions.csv, regions.csv, ng_list.txt and errors.csv (the columns of every run), an
 *               overlay per image; with `moveTo` the image is moved to the OK or the NG folder afterwards
 *   stop        `signal` (SIGTERM, SIGINT on the command line): the image in hand is finished, then it ends
 *
 * Memory stays flat: one model, one image (or one batch of ready images) at a time; the journal is
 * appended to, never held, except the keys of the files already inspected.
 */
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, copyFile, mkdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, join, relative, resolve } from 'node:path';
import { Walker, type ImageItem } from '../../data/dataset.js';
import { csvLines } from '../../io/results.js';
import { checkOptions, OPTIONS } from '../../options.js';
import { KensaError } from '../../util/errors.js';
import { keptScores } from '../contracts/calibration.js';
import { decide, type ThresholdChoice } from '../contracts/decisions.js';
import { DRIFT_WINDOW, DriftMonitor, driftMessage } from '../contracts/drift.js';
import type { KensaModel } from '../contracts/model-file.js';
import { Inspector } from '../engine/inspector.js';
import {
  decisionsOf,
  ngLines,
  predictionOf,
  predictionRow,
  regionRows,
  type Prediction,
  type ScoringOptions,
  writeListFiles,
} from '../engine/run.js';
import { lockResultsFolder } from '../outputs/paths.js';
import { outputName, writeOverlay } from '../outputs/pictures.js';
import { tr } from '../../i18n.js';

export const WATCH_JOURNAL = 'watch.jsonl';
/** Most ready images scored in one go (a backbone batch's worth). */
const READY_AT_ONCE = 16;

export interface WatchOptions extends ScoringOptions {
  model: string | KensaModel;
  /** The drop folder (its sub-folders too). */
  folder: string;
  out: string;
  threshold?: ThresholdChoice;
  /** Move each inspected image to `ok` or `ng` (folders; made when missing). */
  moveTo?: { ok: string; ng: string };
  /** Heat-map overlays (default true). */
  overlays?: boolean;
  intervalMs?: number;
  settleMs?: number;
  /** Stops the watch (after the image in hand). */
  signal?: AbortSignal;
  /** Told every result as it is written. */
  onImage?: (p: Prediction) => void;
  /** Lines for the operator: started, hourly summaries, drift, files that could not be moved. */
  onLog?: (line: string) => void;
}

export interface WatchSummary {
  inspected: number;
  ng: number;
  errors: number;
}

/** A journal line: one inspected file (by its key) and its result or error. */
interface Entry {
  key: string;
  prediction?: Prediction;
  error?: { file: string; error: string };
}

/** A file's identity for "inspected once": its path in the drop folder, size and modification time. */
const keyOf = (rel: string, size: number, mtimeMs: number) => `${rel}\t${size}\t${Math.round(mtimeMs)}`;

/** Names writers use while a file is not complete yet. */
const inProgress = (name: string) =>
  name.startsWith('.') || /\.(part|tmp|crdownload|partial|filepart)$/i.test(name) || name.startsWith('~');

/** The journal's entries (a last line cut short by a crash is left out: that file is inspected again). */
function readJournal(path: string): Entry[] {
  if (!existsSync(path)) return [];
  const entries: Entry[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as Entry;
      if (typeof e.key === 'string') entries.push(e);
    } catch {
      // an incomplete last line
    }
  }
  return entries;
}

/** The CSV files and the NG list, written again from the journal (so that they always agree with it). */
const rewriteResults = (out: string, entries: Entry[]) =>
  writeListFiles(
    out,
    entries.flatMap((e) => (e.prediction ? [e.prediction] : [])),
    entries.flatMap((e) => (e.error ? [e.error] : [])),
  );

/** Moves a file, across file systems too (copy, then remove). */
async function move(from: string, toFolder: string): Promise<string> {
  await mkdir(toFolder, { recursive: true });
  let to = join(toFolder, basename(from));
  for (let k = 2; existsSync(to); k++) to = join(toFolder, basename(from).replace(/(\.[^.]*)?$/, `-${k}$1`));
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    await copyFile(from, to);
    await unlink(from);
  }
  return to;
}

/**
 * The image files under the drop folder, by the discovery every verb uses (links followed, loops and
 * results folders left out, `skip` too), except those a writer has not finished naming.
 */
function imagesUnder(root: string, skip: readonly string[]): { path: string; rel: string }[] {
  return new Walker({ exclude: [...skip] })
    .images(root, true)
    .filter((path) => !inProgress(basename(path)))
    .map((path) => ({ path, rel: relative(root, path) }));
}

/** Waits `ms`, or less when `signal` aborts (its listener removed either way: the loop runs for days). */
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((done) => {
    if (signal?.aborted) return done();
    const onAbort = () => {
      clearTimeout(timer);
      done();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      done();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export async function watch(options: WatchOptions): Promise<WatchSummary> {
  checkOptions(options, [
    'batch',
    'pixelLimit',
    'mmPerPixel',
    'minDefectMm',
    'intervalMs',
    'settleMs',
    'overlayOpacity',
  ]);
  const folder = resolve(options.folder);
  const out = resolve(options.out);
  const st = await stat(folder).catch(() => undefined);
  if (!st?.isDirectory())
    throw new KensaError('E_NOT_FOUND', 'the folder to watch does not exist (or is not a folder)', {
      file: options.folder,
    });
  const skip = [out, ...(options.moveTo ? [resolve(options.moveTo.ok), resolve(options.moveTo.ng)] : [])];
  const interval = options.intervalMs ?? OPTIONS.intervalMs.default;
  const settle = options.settleMs ?? OPTIONS.settleMs.default;
  const log = options.onLog ?? (() => {});
  const release = await lockResultsFolder(out);
  let inspector: Inspector | undefined;
  const summary: WatchSummary = { inspected: 0, ng: 0, errors: 0 };
  try {
    const { model, threshold, size } = await decisionsOf(options.model, options);
    const journalPath = join(out, WATCH_JOURNAL);
    const entries = readJournal(journalPath);
    const done = new Set(entries.map((e) => e.key));
    await rewriteResults(out, entries);
    const names = new Set(
      entries.flatMap((e) => (e.prediction ? [outputName(e.prediction.file, folder)] : [])),
    );
    entries.length = 0;
    inspector = await Inspector.open(model, {
      weights: options.weights,
      cacheDir: options.cacheDir,
      batch: options.batch,
      onPlan: options.onPlan,
      pixelLimit: options.pixelLimit,
    });
    const drift = new DriftMonitor(keptScores(model.calibrationScores, model.meta.calibration), DRIFT_WINDOW);
    let drifting = false;
    const t = `${threshold.name} ${threshold.value.toPrecision(4)}`;
    log(
      tr(
        `watching ${folder} (${done.size} file${done.size === 1 ? '' : 's'} inspected before); results in ${out}; threshold ${t}`,
        `${folder} を監視しています（検査済み ${done.size} 件）。結果は ${out}、しきい値 ${t}`,
      ),
    );
    let hour = new Date().toISOString().slice(0, 13);
    const perHour = { images: 0, ng: 0, errors: 0 };
    const sayHour = () => {
      if (perHour.images || perHour.errors)
        log(
          `${hour.replace('T', ' ')}:00 UTC: ` +
            tr(
              `${perHour.images} image${perHour.images === 1 ? '' : 's'}, ${perHour.ng} NG, ${perHour.errors} error${perHour.errors === 1 ? '' : 's'}`,
              `${perHour.images} 枚、NG ${perHour.ng} 枚、エラー ${perHour.errors} 件`,
            ),
        );
      Object.assign(perHour, { images: 0, ng: 0, errors: 0 });
    };
    // files seen but not yet complete: their size and time, and since when they have not changed
    const pending = new Map<string, { key: string; since: number }>();
    const record = async (entry: Entry) => {
      await appendFile(journalPath, JSON.stringify(entry) + '\n');
      done.add(entry.key);
    };
    while (!options.signal?.aborted) {
      const now = Date.now();
      const stamp = new Date(now).toISOString().slice(0, 13);
      if (stamp !== hour) {
        sayHour();
        hour = stamp;
      }
      const ready: { path: string; rel: string; key: string }[] = [];
      const seen = new Set<string>();
      for (const f of imagesUnder(folder, skip)) {
        const s = await stat(f.path).catch(() => undefined);
        if (!s?.isFile() || s.size === 0) continue;
        const key = keyOf(f.rel, s.size, s.mtimeMs);
        seen.add(f.rel);
        if (done.has(key)) continue;
        const p = pending.get(f.rel);
        if (!p || p.key !== key) pending.set(f.rel, { key, since: now });
        else if (now - p.since >= settle) ready.push({ ...f, key });
      }
      for (const rel of pending.keys()) if (!seen.has(rel)) pending.delete(rel);
      for (let i = 0; i < ready.length && !options.signal?.aborted; i += READY_AT_ONCE) {
        const chunk = ready.slice(i, i + READY_AT_ONCE);
        const byPath = new Map(chunk.map((c) => [c.path, c]));
        const failed: { item: ImageItem; error: Error }[] = [];
        const items: ImageItem[] = chunk.map((c) => ({ path: c.path }));
        for await (const r of inspector.score(items, {
          onError: (item, error) => failed.push({ item, error }),
          pixelLimit: options.pixelLimit,
        })) {
          const file = byPath.get(r.item.path)!;
          const v = decide(r, threshold.value, size);
          const prediction = predictionOf(r, v);
          if (options.overlays ?? true) {
            let name = outputName(file.path, folder);
            for (let k = 2; names.has(name); k++) name = `${outputName(file.path, folder)}-${k}`;
            names.add(name);
            try {
              await writeOverlay(out, name, r, v, model, options.overlayOpacity);
            } catch (error) {
              log(
                `${tr('warning', '警告')}: ${file.path}: ${tr('its overlay could not be written', 'オーバーレイを書けませんでした')}: ${(error as Error).message}`,
              );
            }
          }
          await record({ key: file.key, prediction });
          await appendFile(join(out, 'predictions.csv'), csvLines([predictionRow(prediction)]));
          await appendFile(join(out, 'regions.csv'), csvLines(regionRows(prediction)));
          if (v.verdict === 'NG') await appendFile(join(out, 'ng_list.txt'), ngLines([prediction]));
          summary.inspected++;
          perHour.images++;
          if (v.verdict === 'NG') {
            summary.ng++;
            perHour.ng++;
          }
          if (v.verdict === 'OK') drift.add(r.score);
          const status = drift.status();
          if (status.drifting && !drifting)
            log(`${tr('warning', '警告')}: ${driftMessage(status, 'images judged OK recently')}`);
          drifting = status.drifting;
          options.onImage?.(prediction);
          if (options.moveTo) {
            try {
              await move(file.path, v.verdict === 'NG' ? options.moveTo.ng : options.moveTo.ok);
            } catch (error) {
              log(
                `${tr('warning', '警告')}: ${file.path}: ${tr('could not be moved', '移動できませんでした')}: ${(error as Error).message}`,
              );
            }
          }
          pending.delete(file.rel);
        }
        for (const { item, error } of failed) {
          const file = byPath.get(item.path)!;
          const e = { file: item.path, error: error.message };
          await record({ key: file.key, error: e });
          await appendFile(join(out, 'errors.csv'), csvLines([[e.file, e.error]]));
          summary.errors++;
          perHour.errors++;
          log(
            `${tr('warning', '警告')}: ${item.path}: ${tr('not inspected', '検査できませんでした')}: ${error.message}`,
          );
          pending.delete(file.rel);
        }
      }
      await sleep(interval, options.signal);
    }
    sayHour();
    return summary;
  } finally {
    await inspector?.dispose();
    release();
  }
}
