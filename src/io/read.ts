import { readFile } from 'node:fs/promises';
import { KensaError } from '../util/errors.js';

/** Reads a whole file; a failure becomes a KensaError that names the file and says what to check. */
export async function readFileOrExplain(path: string, what: string, hint: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new KensaError(
      'E_NOT_FOUND',
      `cannot read the ${what} (${(error as NodeJS.ErrnoException).code ?? error}). ${hint}`,
      {
        file: path,
        cause: error,
      },
    );
  }
}
