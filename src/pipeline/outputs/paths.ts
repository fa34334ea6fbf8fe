/**
 * Output paths, checked before any work: the target can be written (a probe file in its folder), a
 * results folder is not written by two runs at once (a lock file naming the process that holds it), and
 * a results folder is marked as kensa's so that later runs never take its pictures as input.
 */
import { closeSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RESULTS_MARKER } from '../../data/dataset.js';
import { ioError, makeFolder, temporaryPathFor, releaseTemporaryPath, writeTarget } from '../../io/atomic.js';
import { KensaError } from '../../util/errors.js';

export { RESULTS_MARKER };
export const LOCK_FILE = '.kensa.lock';

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
