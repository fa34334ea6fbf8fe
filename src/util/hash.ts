import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** sha256 of a whole file, streamed (weights files can be hundreds of megabytes). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function sha256Bytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * sha256 of named tensors, independent of their order in a file: per tensor, in name order, its name,
 * dtype and shape, then its bytes. A model file stores it to refuse tensors damaged on disk or in copying.
 */
export function tensorsDigest(
  tensors: Iterable<[string, { dtype: string; shape: readonly number[]; data: ArrayBufferView }]>,
): string {
  const hash = createHash('sha256');
  for (const [name, t] of [...tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    hash.update(`${name}\0${t.dtype}\0${t.shape.join(',')}\0`);
    hash.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return hash.digest('hex');
}
