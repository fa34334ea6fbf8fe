/**
 * Reading zip archives (PyTorch's zip checkpoints, Python wheels) with fflate, refusing the odd entries a
 * crafted archive can hold: names that climb out of the archive (`../x`, `/etc/x`, `C:\x`), and entries
 * whose declared size is implausibly large (a "zip bomb") — before anything is inflated.
 */
import { unzipSync, type UnzipFileInfo } from 'fflate';
import { KensaError } from '../util/errors.js';

/** No single entry kensa reads is larger than this (the largest supported checkpoint is ~270 MB). */
export const MAX_ENTRY_BYTES = 4 * 1024 ** 3;
/** Deflate cannot compress better than about 1032:1; a larger ratio is a lie or a bomb. */
const MAX_DEFLATE_RATIO = 1032;

export const isZip = (bytes: Uint8Array): boolean =>
  bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;

function checkEntry(info: UnzipFileInfo, file: string): void {
  const name = info.name;
  if (
    name.startsWith('/') ||
    name.includes('\\') ||
    /^[A-Za-z]:/.test(name) ||
    name.split('/').includes('..')
  ) {
    throw new KensaError('E_UNSAFE', `refusing to read the archive: entry '${name}' points outside it`, {
      file,
    });
  }
  const declared = info.originalSize;
  const tooLarge =
    declared > MAX_ENTRY_BYTES ||
    (info.compression === 0 && declared !== info.size) ||
    (info.compression !== 0 && declared > info.size * MAX_DEFLATE_RATIO + 1024);
  if (tooLarge) {
    throw new KensaError(
      'E_UNSAFE',
      `refusing to read the archive: entry '${name}' declares ${declared} bytes from ${info.size} stored bytes`,
      { file },
    );
  }
}

/**
 * Lists the entry names, checking every entry; then inflates only the entries `want` picks.
 * Returns the picked entries by name.
 */
export function readZip(
  bytes: Uint8Array,
  file: string,
  want: (name: string) => boolean,
): Map<string, Uint8Array> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes, {
      filter: (info) => {
        checkEntry(info, file);
        return want(info.name);
      },
    });
  } catch (error) {
    if (error instanceof KensaError) throw error;
    throw new KensaError(
      'E_FORMAT',
      `not a readable zip archive (${(error as Error).message}). The file may be truncated: download or copy it again`,
      { file, cause: error },
    );
  }
  return new Map(Object.entries(entries));
}

/** Names of all entries (each checked as in readZip). */
export function listZip(bytes: Uint8Array, file: string): string[] {
  const names: string[] = [];
  readZip(bytes, file, (name) => {
    names.push(name);
    return false;
  });
  return names;
}
