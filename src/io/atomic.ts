import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Temporary files being written now, removed by removePendingTemporaryFiles() on an interrupt. */
const pending = new Set<string>();

/** A temporary name beside the target, so the final rename stays on one file system. */
export function temporaryPathFor(target: string): string {
  const tmp = join(
    dirname(target),
    `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
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

/**
 * Writes a file atomically: the bytes go to a temporary file beside the target, are flushed to disk,
 * and the temporary file is renamed over the target. A reader sees the old file or the new one, never half.
 */
export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = temporaryPathFor(target);
  try {
    const handle = await open(tmp, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, target);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  } finally {
    releaseTemporaryPath(tmp);
  }
}
