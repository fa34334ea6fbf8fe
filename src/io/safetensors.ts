/**
 * safetensors (https://github.com/huggingface/safetensors) reading and writing.
 *
 * Layout: 8 bytes little-endian header length N, N bytes of JSON header, then the tensor bytes.
 * The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
 * the end of the header); "__metadata__" holds string→string pairs. Every size and offset is checked
 * against the file before anything is allocated, so a header that lies cannot cause a large allocation
 * or a read outside the file.
 *
 * Files are read header first, then tensor by tensor at their offsets (no 2 GiB ceiling, and a file that
 * is not safetensors is refused after its first 8 bytes); they are written tensor by tensor into a
 * temporary file that replaces the target atomically. The header may carry spare space (spaces, which
 * JSON ignores), so that metadata such as thresholds can be changed without rewriting the tensors.
 */
import { chown, copyFile, constants, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  ioError,
  makeFolder,
  releaseTemporaryPath,
  temporaryPathFor,
  writeAtomicWith,
  writeTarget,
} from './atomic.js';
import { KensaError } from '../util/errors.js';
import {
  DTYPE_BYTES,
  emptyTensorData,
  numel,
  typedArrayFromBytes,
  type DType,
  type Tensor,
} from '../util/tensor.js';

const TO_DTYPE: Record<string, DType> = {
  F32: 'float32',
  F64: 'float64',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};
const FROM_DTYPE: Record<DType, string> = Object.fromEntries(
  Object.entries(TO_DTYPE).map(([k, v]) => [v, k]),
) as Record<DType, string>;

/** Largest JSON header accepted (the format's own reference reader uses the same bound). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Bytes read per call when loading a tensor (well below every platform's single-read limit). */
const READ_PIECE = 1 << 28;

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

function fail(file: string | undefined, message: string): never {
  throw new KensaError(
    'E_FORMAT',
    `not a valid safetensors file: ${message}. Re-create the file, or check that it was copied completely`,
    { file },
  );
}

/** The header length from the first 8 bytes, checked against the bytes that follow them. */
function headerLength(first8: Uint8Array, available: number, file?: string): number {
  const length = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(Math.min(MAX_HEADER_BYTES, available))) {
    fail(file, `the header claims ${length} bytes but the file has ${available} after the length`);
  }
  return Number(length);
}

/** Validates a header against `dataLength` bytes of tensor data; returns its entries and metadata. */
function parseHeader(
  headerBytes: Uint8Array,
  dataLength: number,
  file?: string,
): { entries: Entry[]; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (error) {
    fail(file, `the header is not JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    fail(file, 'the header is not a JSON object');
  const entries: Entry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
        fail(file, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') fail(file, `__metadata__.${k} is not a string`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(file, `entry '${name}' is not an object`);
    const dtype = typeof e.dtype === 'string' ? TO_DTYPE[e.dtype] : undefined;
    if (!dtype) fail(file, `tensor '${name}' has unsupported dtype ${JSON.stringify(e.dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(file, `tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
    }
    const offsets = e.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1] ||
      offsets[1] > dataLength
    ) {
      fail(
        file,
        `tensor '${name}' has data offsets ${JSON.stringify(offsets)} outside the ${dataLength} data bytes`,
      );
    }
    const count = numel(shape as number[]);
    const [begin, end] = offsets as [number, number];
    if (!Number.isSafeInteger(count) || count * DTYPE_BYTES[dtype] !== end - begin) {
      fail(
        file,
        `tensor '${name}' of shape [${(shape as number[]).join(', ')}] does not fit its ${end - begin} bytes`,
      );
    }
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  return { entries, metadata };
}

/** A whole safetensors file already in memory. */
export function parseSafetensors(bytes: Uint8Array, file?: string): SafetensorsFile {
  if (bytes.length < 8) fail(file, `it has ${bytes.length} bytes, fewer than the 8-byte header length`);
  const n = headerLength(bytes.subarray(0, 8), bytes.length - 8, file);
  const { entries, metadata } = parseHeader(bytes.subarray(8, 8 + n), bytes.length - 8 - n, file);
  const data = bytes.subarray(8 + n);
  const tensors = new Map<string, Tensor>();
  for (const e of entries) {
    tensors.set(e.name, {
      dtype: e.dtype,
      shape: e.shape,
      data: typedArrayFromBytes(e.dtype, data.subarray(e.begin, e.end), numel(e.shape)),
    });
  }
  return { tensors, metadata };
}

/** Reads exactly `into.length` bytes at `position`, in pieces; a short file is a format error. */
async function readExactly(
  handle: FileHandle,
  into: Uint8Array,
  position: number,
  file: string,
): Promise<void> {
  for (let done = 0; done < into.length;) {
    const { bytesRead } = await handle.read(
      into,
      done,
      Math.min(READ_PIECE, into.length - done),
      position + done,
    );
    if (bytesRead === 0) fail(file, `the file ends ${into.length - done} bytes early`);
    done += bytesRead;
  }
}

/** Opens a regular file for reading (a FIFO or device would block or never end); errors name it. */
async function openRegular(
  path: string,
  what: string,
  hint: string,
): Promise<{ handle: FileHandle; size: number }> {
  try {
    const s = await stat(path);
    if (!s.isFile()) {
      throw new KensaError(
        'E_IO',
        `the ${what} is ${s.isDirectory() ? 'a folder' : 'not a regular file (a pipe, socket or device)'}. ${hint}`,
        { file: path },
      );
    }
    return { handle: await open(path, 'r'), size: s.size };
  } catch (error) {
    if (error instanceof KensaError) throw error;
    throw new KensaError(
      'E_NOT_FOUND',
      `cannot read the ${what} (${(error as NodeJS.ErrnoException).code ?? error}). ${hint}`,
      { file: path, cause: error },
    );
  }
}

interface Header {
  entries: Entry[];
  metadata: Record<string, string>;
  /** The JSON header's length in bytes (data starts at 8 + length). */
  length: number;
  /** The header as parsed JSON. */
  json: Record<string, unknown>;
}

async function readHeader(handle: FileHandle, size: number, path: string): Promise<Header> {
  if (size < 8) fail(path, `it has ${size} bytes, fewer than the 8-byte header length`);
  const first = new Uint8Array(8);
  await readExactly(handle, first, 0, path);
  const length = headerLength(first, size - 8, path);
  const bytes = new Uint8Array(length);
  await readExactly(handle, bytes, 8, path);
  const { entries, metadata } = parseHeader(bytes, size - 8 - length, path);
  return {
    entries,
    metadata,
    length,
    json: JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>,
  };
}

/** One tensor's data, read at its offset (`headerLength`: the JSON header's length). */
async function readEntry(handle: FileHandle, e: Entry, headerLength: number, path: string): Promise<Tensor> {
  const data = emptyTensorData(e.dtype, numel(e.shape));
  await readExactly(
    handle,
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    8 + headerLength + e.begin,
    path,
  );
  return { dtype: e.dtype, shape: e.shape, data };
}

/** The metadata of a safetensors file, from its header alone (no tensor is read). */
export async function readSafetensorsHeader(
  path: string,
  what = 'file',
  hint = 'Check the path',
): Promise<{ metadata: Record<string, string> }> {
  const { handle, size } = await openRegular(path, what, hint);
  try {
    return { metadata: (await readHeader(handle, size, path)).metadata };
  } finally {
    await handle.close();
  }
}

/**
 * Reads a safetensors file from disk: the header first (a file that is not one is refused after 8 bytes),
 * then each tensor at its offset. Only regular files are opened.
 */
export async function readSafetensors(
  path: string,
  what = 'file',
  hint = 'Check the path',
): Promise<SafetensorsFile> {
  const { handle, size } = await openRegular(path, what, hint);
  try {
    const { entries, metadata, length } = await readHeader(handle, size, path);
    const tensors = new Map<string, Tensor>();
    for (const e of entries) tensors.set(e.name, await readEntry(handle, e, length, path));
    return { tensors, metadata };
  } finally {
    await handle.close();
  }
}

/** One tensor of a safetensors file, read at its offset (the others are not read); undefined if absent. */
export async function readSafetensorsTensor(
  path: string,
  name: string,
  what = 'file',
  hint = 'Check the path',
): Promise<Tensor | undefined> {
  const { handle, size } = await openRegular(path, what, hint);
  try {
    const { entries, length } = await readHeader(handle, size, path);
    const e = entries.find((x) => x.name === name);
    return e && (await readEntry(handle, e, length, path));
  } finally {
    await handle.close();
  }
}

export interface WriteOptions {
  /** Spare header bytes (spaces) for later metadata changes without rewriting the tensors. */
  reserve?: number;
}

const bytesOf = (t: Tensor) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** The header bytes (padded to a multiple of 8, plus the reserve) for tensors in the order given. */
function buildHeader(
  tensors: readonly [string, Tensor][],
  metadata: Record<string, string>,
  reserve = 0,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new KensaError('E_ARGUMENT', `'__metadata__' cannot be a tensor name`);
    const length = t.data.byteLength;
    if (length !== numel(t.shape) * DTYPE_BYTES[t.dtype]) {
      throw new KensaError(
        'E_SHAPE',
        `tensor '${name}': ${t.data.length} values do not fill shape [${t.shape.join(', ')}]`,
      );
    }
    header[name] = { dtype: FROM_DTYPE[t.dtype], shape: t.shape, data_offsets: [offset, offset + length] };
    offset += length;
  }
  return paddedHeader(JSON.stringify(header), reserve);
}

function paddedHeader(json: string, reserve: number, exactly?: number): Uint8Array {
  const length = Buffer.byteLength(json);
  const target = exactly ?? Math.ceil((8 + length + reserve) / 8) * 8 - 8;
  return new TextEncoder().encode(json + ' '.repeat(target - length));
}

/**
 * Serialises tensors (in the order given) and string metadata. The output depends only on the inputs,
 * so the same tensors give byte-identical files. The header is padded with spaces to a multiple of 8.
 */
export function serializeSafetensors(
  tensors: Iterable<[string, Tensor]>,
  metadata: Record<string, string> = {},
  options: WriteOptions = {},
): Uint8Array {
  const list = [...tensors];
  const headerBytes = buildHeader(list, metadata, options.reserve);
  const total = list.reduce((s, [, t]) => s + t.data.byteLength, 0);
  const out = new Uint8Array(8 + headerBytes.length + total);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const [, t] of list) {
    out.set(bytesOf(t), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Writes a safetensors file atomically, tensor by tensor (no copy of the whole file in memory). */
export async function writeSafetensors(
  path: string,
  tensors: readonly [string, Tensor][],
  metadata: Record<string, string> = {},
  options: WriteOptions = {},
): Promise<void> {
  const headerBytes = buildHeader(tensors, metadata, options.reserve);
  await writeAtomicWith(path, async (handle) => {
    const length = new Uint8Array(8);
    new DataView(length.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
    await handle.write(length);
    await handle.write(headerBytes);
    for (const [, t] of tensors) {
      const b = bytesOf(t);
      for (let done = 0; done < b.length; done += READ_PIECE)
        await handle.write(b.subarray(done, done + READ_PIECE));
    }
  });
}

/**
 * Writes `to` as a copy of the safetensors file `from` with other metadata, keeping the tensors: when the
 * new header fits the old one's space (the reserve), the file is copied by the kernel (a reflink where the
 * file system has them), the header overwritten in the copy, and the copy renamed over `to` — atomic, and
 * without reading the tensors into memory. `to` may be `from` (an update in place; a symbolic link is
 * written through and the file keeps its mode). Returns false when the header does not fit (the caller
 * then writes the whole file).
 */
export async function rewriteSafetensorsMetadata(
  from: string,
  metadata: Record<string, string>,
  to = from,
): Promise<boolean> {
  const source = await writeTarget(from);
  const real = await writeTarget(to);
  const { handle, size } = await openRegular(source, 'file', 'Check the path');
  let header: Header;
  let owner: { uid: number; gid: number };
  try {
    header = await readHeader(handle, size, from);
    const s = await handle.stat();
    owner = { uid: s.uid, gid: s.gid };
  } finally {
    await handle.close();
  }
  const json = JSON.stringify({ ...header.json, __metadata__: metadata });
  if (Buffer.byteLength(json) > header.length) return false;
  const headerBytes = paddedHeader(json, 0, header.length);
  const tmp = temporaryPathFor(real);
  try {
    await makeFolder(dirname(real));
    await copyFile(source, tmp, constants.COPYFILE_FICLONE);
    const out = await open(tmp, 'r+');
    try {
      await out.write(headerBytes, 0, headerBytes.length, 8);
      await out.sync();
    } finally {
      await out.close();
    }
    if (real === source) await chown(tmp, owner.uid, owner.gid).catch(() => undefined);
    await rename(tmp, real);
  } catch (error) {
    await rm(tmp, { force: true });
    throw ioError(to, error);
  } finally {
    releaseTemporaryPath(tmp);
  }
  return true;
}
