/**
 * Output paths, checked before any work: the target can be written (a probe file in its folder), a
 * results folder is not written by two runs at once (a lock file naming the process that holds it), and
 * a results folder is marked as kensa's so that later runs never take its pictures as input.
 */
import { closeSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { lstat, open, readdir, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { RESULTS_MARKER } from '../../data/dataset.js';
import {
  ioError,
  makeFolder,
  recordWrites,
  releaseTemporaryPath,
  temporaryPathFor,
  writeFileAtomic,
  writeTarget,
} from '../../io/atomic.js';
import { KensaError } from '../../util/errors.js';
import { loadModelMetadata } from '../contracts/model-file.js';

export { RESULTS_MARKER };
export const LOCK_FILE = '.kensa.lock';
/** What the last run wrote into a results folder (so that the next run removes exactly that). */
export const RUN_RECORD = '.kensa-run.json';

/** The files and folders a run writes by name, for folders of runs that left no record (older kensa). */
const RUN_FILES = [
  'predictions.csv',
  'predictions.json',
  'regions.csv',
  'ng_list.txt',
  'errors.csv',
  'results.json',
  'report.html',
  'metrics.json',
  'roc.png',
  'pr.png',
  'learning_curves.png',
];
const RUN_FOLDERS = ['overlays', 'thumbs', 'figures', 'calibration'];

/** The regular files under a folder, relative to it (links not followed). */
async function filesUnder(root: string, rel: string): Promise<string[]> {
  const entries = await readdir(join(root, rel), { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const e of entries) {
    const path = join(rel, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(root, path)));
    else if (e.isFile()) out.push(path);
  }
  return out;
}

/**
 * Clears a results folder of what the previous run wrote there — the files its record lists, or, for a
 * run that left none (interrupted, or an older kensa), the files kensa names its outputs — so that
 * yesterday's overlays and report never sit beside today's predictions. Nothing else in the folder is
 * touched: not the user's files, not a model saved there. Then records this run's files (`finish`).
 */
export async function startRunRecord(
  dir: string,
): Promise<{ finish: () => Promise<void>; stop: () => void }> {
  let listed: string[] | undefined;
  try {
    const record = JSON.parse(readFileSync(join(dir, RUN_RECORD), 'utf8')) as { files?: unknown };
    if (Array.isArray(record.files)) listed = record.files.filter((f): f is string => typeof f === 'string');
  } catch {
    // no record, or a damaged one: fall back to kensa's own output names
  }
  const previous = listed ?? [
    ...RUN_FILES,
    ...(await Promise.all(RUN_FOLDERS.map((f) => filesUnder(dir, f)))).flat(),
  ];
  const root = resolve(dir);
  for (const rel of previous) {
    const path = resolve(root, rel);
    const inside = relative(root, path);
    if (!inside || inside.startsWith('..') || isAbsolute(inside) || path.endsWith('.kensa')) continue;
    const st = await lstat(path).catch(() => undefined);
    if (st?.isFile()) await rm(path, { force: true });
  }
  for (const folder of RUN_FOLDERS) await rmdir(join(dir, folder)).catch(() => undefined);
  const started = new Date().toISOString();
  await writeFileAtomic(join(dir, RUN_RECORD), JSON.stringify({ started }) + '\n');
  const recorder = recordWrites(dir);
  return {
    finish: async () => {
      recorder.stop();
      const files = [...recorder.files].filter((f) => f !== RUN_RECORD && !f.endsWith('.kensa')).sort();
      await writeFileAtomic(
        join(dir, RUN_RECORD),
        JSON.stringify({ started, finished: new Date().toISOString(), files }, null, 1) + '\n',
      );
    },
    stop: recorder.stop,
  };
}

/**
 * Checks that `path` can be written: for a file, that it is not a folder and its folder accepts a new
 * file; for a folder, that it is (or can be made) a folder that accepts a new file. Creates missing
 * folders. Errors name the path and the cause (exit code 1).
 */
export async function checkWritable(path: string, kind: 'file' | 'folder'): Promise<void> {
  const target = kind === 'file' ? await writeTarget(path) : path;
  const existing = await stat(target).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw ioError(path, error);
  });
  if (kind === 'file' && existing?.isDirectory())
    throw new KensaError(
      'E_IO',
      'cannot write: this is an existing folder; give a file name (e.g. model.kensa)',
      { file: path },
    );
  if (kind === 'folder' && existing && !existing.isDirectory())
    throw new KensaError('E_IO', 'cannot write the results here: this is a file, not a folder', {
      file: path,
    });
  const folder = kind === 'file' ? dirname(target) : target;
  try {
    await makeFolder(folder);
  } catch (error) {
    throw ioError(folder, error);
  }
  const probe = temporaryPathFor(kind === 'file' ? target : join(folder, 'probe'));
  try {
    const handle = await open(probe, 'w');
    await handle.close();
  } catch (error) {
    throw ioError(kind === 'file' ? path : folder, error);
  } finally {
    await rm(probe, { force: true });
    releaseTemporaryPath(probe);
  }
}

/**
 * Refuses to replace an existing model file unless `force`: it may hold a threshold chosen by hand, its
 * calibration's exclusions, or be in use on a line. The message says what is there.
 */
export async function checkNewModel(path: string, force: boolean | undefined, what: string): Promise<void> {
  if (force) return;
  const existing = await stat(path).catch(() => undefined);
  if (!existing?.isFile()) return;
  const when = existing.mtime.toISOString().slice(0, 16).replace('T', ' ');
  let kind: string;
  try {
    const meta = await loadModelMetadata(path);
    const custom = meta.thresholds.custom;
    kind =
      `a ${meta.method} model (written ${when}${custom !== undefined ? `, with the custom threshold ${custom}` : ''}` +
      `${meta.calibration.excluded?.length ? `, ${meta.calibration.excluded.length} calibration images left out` : ''})`;
  } catch {
    kind = `a file (written ${when}, not a model this kensa reads)`;
  }
  throw new KensaError(
    'E_ARGUMENT',
    `${kind} is already there; ${what} does not replace it without --force. Give --force to replace it, or another --out`,
    { file: path },
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const held = new Set<string>();

/** Releases the locks this process holds (at exit, also after an interrupt). */
export function releaseLocks(): void {
  for (const lock of held) rmSync(lock, { force: true });
  held.clear();
}

/**
 * Takes the results folder for this run: refuses when another running kensa holds it (naming that
 * process), takes over a lock left by a process that is gone. Returns a function that releases it.
 */
export async function lockResultsFolder(dir: string): Promise<() => void> {
  await checkWritable(dir, 'folder');
  const lock = join(dir, LOCK_FILE);
  const me = `${process.pid}\n${process.argv.slice(1).join(' ')}\n`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, me);
      closeSync(fd);
      held.add(lock);
      writeFileSync(
        join(dir, RESULTS_MARKER),
        'kensa results folder: kensa does not read images from here\n',
      );
      return () => {
        rmSync(lock, { force: true });
        held.delete(lock);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(lock, error);
      let text = '';
      try {
        text = readFileSync(lock, 'utf8');
      } catch {
        // removed meanwhile: try again
      }
      const [pidLine, command] = text.split('\n');
      const pid = Number(pidLine);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new KensaError(
          'E_IO',
          `another kensa run is writing to this folder (process ${pid}${command ? `: kensa ${command.split(' ').slice(1).join(' ')}` : ''}). ` +
            'Wait for it to finish, or choose another --out',
          { file: dir },
        );
      }
      rmSync(lock, { force: true });
    }
  }
  throw new KensaError('E_IO', 'could not take the lock of the results folder; try again', { file: dir });
}
