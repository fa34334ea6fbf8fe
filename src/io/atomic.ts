/**
 * Atomic file writes: the bytes go to a temporary file beside the target, are flushed to disk, and the
 * temporary file is renamed over the target. A reader sees the old file or the new one, never half.
 *
 * A target that is a symbolic link is written through (the file it points to is replaced, the link
 * stays), and a replaced file keeps its mode (and, where allowed, its owner and group). Failures become a
 * KensaError that names the path and says what went wrong in words (disk full, permission denied, ...).
 */
import { randomBytes } from 'node:crypto';
import { constants, rmSync } from 'node:fs';
import {
  access,
  chown,
  copyFile,
  lstat,
  mkdir,
  open,
  readlink,
  realpath,
  rename,
  rm,
  stat,
  type FileHandle,
} from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { KensaError } from '../util/errors.js';

/** Temporary files being written now, removed by removePendingTemporaryFiles() on an interrupt. */
const pending = new Set<string>();

/** Longest file name most file systems accept, in bytes (ext4, XFS, APFS, NTFS in UTF-16 units). */
export const MAX_NAME_BYTES = 255;

/** A temporary name beside the target, so the final rename stays on one file system. */
export function temporaryPathFor(target: string): string {
  const suffix = `.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  // the temporary name must fit the file-name limit even when the target's name is near it
  let name = basename(target);
  while (Buffer.byteLength(`.${name}${suffix}`) > MAX_NAME_BYTES) name = name.slice(0, -1);
  const tmp = join(dirname(target), `.${name}${suffix}`);
  pending.add(tmp);
  return tmp;
}

/** Done with a temporary path (renamed or removed). */
export function releaseTemporaryPath(tmp: string): void {
  pending.delete(tmp);
}

/** Removes the temporary files of writes still in progress (called when the process is interrupted). */
export function removePendingTemporaryFiles(): void {
  for (const tmp of pending) rmSync(tmp, { force: true });
  pending.clear();
}

/** A file-system failure in words, for a message that names the path. */
export function describeIoError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return 'the disk is full (or the quota is used up); free some space or write elsewhere';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied; choose a folder you may write to, or change its permissions';
    case 'EROFS':
      return 'the file system is read-only; write elsewhere';
    case 'EISDIR':
      return 'this is an existing folder; give a file name';
    case 'ENOTDIR':
      return 'a part of the path is a file, not a folder';
    case 'ENAMETOOLONG':
      return 'the name is too long for this file system; use a shorter path';
    case 'ENOENT':
      return 'the folder does not exist';
    case 'ELOOP':
      return 'the path is a loop of symbolic links';
    default:
      return `${(error as Error).message ?? String(error)}`;
  }
}

export function ioError(path: string, error: unknown, action = 'cannot write'): KensaError {
  if (error instanceof KensaError) return error;
  return new KensaError('E_IO', `${action}: ${describeIoError(error)}`, { file: path, cause: error });
}

/**
 * Creates a folder and the folders above it that are missing, one level at a time. Node's own recursive
 * mkdir is not used: on a read-only file system it reports ENOENT ("the folder does not exist") instead
 * of the cause, and under /proc it never returns. A failure carries the real cause (EROFS, EACCES,
 * ENOTDIR, ...), found by asking the nearest folder that exists.
 */
export async function makeFolder(path: string): Promise<void> {
  const missing: string[] = [];
  let at = resolve(path);
  for (;;) {
    const s = await stat(at).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (s) {
      if (!s.isDirectory()) throw Object.assign(new Error(`${at} is a file`), { code: 'ENOTDIR' });
      break;
    }
    missing.push(at);
    const up = dirname(at);
    if (up === at) break;
    at = up;
  }
  for (const folder of missing.reverse()) {
    try {
      await mkdir(folder);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue;
      if (code === 'ENOENT') {
        // the parent exists but takes no new folder: ask it why (read-only, no permission), else say so
        await access(dirname(folder), constants.W_OK);
        throw Object.assign(
          new Error(
            'this folder cannot be created here: the file system takes no new folders (a virtual or read-only file system); write elsewhere',
          ),
          { code: 'ENOFOLDER' },
        );
      }
      throw error;
    }
  }
}

/** Where a write to `target` really goes: through a symbolic link to the file it names. */
export async function writeTarget(target: string): Promise<string> {
  try {
    if ((await lstat(target)).isSymbolicLink()) return await realpath(target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      // a dangling link: write the file it names
      const to = await readlink(target).catch(() => undefined);
      return to === undefined ? target : isAbsolute(to) ? to : join(dirname(target), to);
    }
    if (code !== 'ENOTDIR') throw ioError(target, error);
  }
  return target;
}

/** Folders whose files written here are being recorded, each with the paths written (relative to it). */
const recorders = new Map<string, Set<string>>();

/**
 * Records every file written through this module under `folder` (a run's results folder) until `stop`:
 * `files` holds their paths relative to it.
 */
export function recordWrites(folder: string): { files: Set<string>; stop: () => void } {
  const root = resolve(folder);
  const files = new Set<string>();
  recorders.set(root, files);
  return { files, stop: () => recorders.delete(root) };
}

function recordWritten(target: string): void {
  const path = resolve(target);
  for (const [root, files] of recorders) {
    const rel = relative(root, path);
    if (rel && !rel.startsWith('..') && !isAbsolute(rel)) files.add(rel);
  }
}

/**
 * Writes a file atomically through `fill`, which writes the content into the open temporary file.
 * The target's folder is created when missing.
 */
export async function writeAtomicWith(
  target: string,
  fill: (handle: FileHandle) => Promise<void>,
): Promise<void> {
  const real = await writeTarget(target);
  let tmp: string | undefined;
  try {
    await makeFolder(dirname(real));
    const previous = await stat(real).catch(() => undefined);
    if (previous?.isDirectory()) throw Object.assign(new Error('is a folder'), { code: 'EISDIR' });
    tmp = temporaryPathFor(real);
    const handle = await open(tmp, 'w');
    try {
      await fill(handle);
      if (previous) {
        await handle.chmod(previous.mode & 0o7777);
        await chown(tmp, previous.uid, previous.gid).catch(() => undefined);
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, real);
    recordWritten(target);
  } catch (error) {
    if (tmp) await rm(tmp, { force: true });
    throw ioError(target, error);
  } finally {
    if (tmp) releaseTemporaryPath(tmp);
  }
}

/** Writes bytes or text atomically (see writeAtomicWith). */
export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  await writeAtomicWith(target, async (handle) => {
    await handle.writeFile(data);
  });
}

/** Copies a file atomically: the copy appears whole under its name, or not at all. */
export async function copyFileAtomic(from: string, to: string): Promise<void> {
  const real = await writeTarget(to);
  const tmp = temporaryPathFor(real);
  try {
    await copyFile(from, tmp);
    await rename(tmp, real);
    recordWritten(to);
  } catch (error) {
    await rm(tmp, { force: true });
    throw ioError(to, error);
  } finally {
    releaseTemporaryPath(tmp);
  }
}
