/**
 * safetensors (https://github.com/huggingface/safetensors) reading and writing.
 *
 * Layout: 8 bytes little-endian header length N, N bytes of JSON header, then the tensor bytes.
 * The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
 * the end of the header); "__metadata__" holds string→string pairs. Every size and offset is checked
 * against the file before anything is allocated, so a header that lies cannot cause a large allocation
 * or a read outside the file.
 */
import { readFileOrExplain } from './read.js';
import { KensaError } from '../util/errors.js';
import { DTYPE_BYTES, numel, typedArrayFromBytes, type DType, type Tensor } from '../util/tensor.js';

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

export interface SafetensorsFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

function fail(file: string | undefined, message: string): never {
  throw new KensaError(
    'E_FORMAT',
    `not a valid safetensors file: ${message}. Re-create the file, or check that it was copied completely`,
    { file },
  );
}

export function parseSafetensors(bytes: Uint8Array, file?: string): SafetensorsFile {
  if (bytes.length < 8) fail(file, `it has ${bytes.length} bytes, fewer than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, bytes.length - 8))) {
    fail(
      file,
      `the header claims ${headerLength} bytes but the file has ${bytes.length - 8} after the length`,
    );
  }
  const n = Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (error) {
    fail(file, `the header is not JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    fail(file, 'the header is not a JSON object');
  const data = bytes.subarray(8 + n);
  const tensors = new Map<string, Tensor>();
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
      offsets[1] > data.length
    ) {
      fail(
        file,
        `tensor '${name}' has data offsets ${JSON.stringify(offsets)} outside the ${data.length} data bytes`,
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
    tensors.set(name, {
      dtype,
      shape: shape as number[],
      data: typedArrayFromBytes(dtype, data.subarray(begin, end), count),
    });
  }
  return { tensors, metadata };
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const bytes = await readFileOrExplain(path, 'file', 'Check the path');
  return parseSafetensors(bytes, path);
}

/**
 * Serialises tensors (in the order given) and string metadata. The output depends only on the inputs,
 * so the same tensors give byte-identical files. The header is padded with spaces to a multiple of 8.
 */
export function serializeSafetensors(
  tensors: Iterable<[string, Tensor]>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new KensaError('E_ARGUMENT', `'__metadata__' cannot be a tensor name`);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (bytes.length !== numel(t.shape) * DTYPE_BYTES[t.dtype]) {
      throw new KensaError(
        'E_SHAPE',
        `tensor '${name}': ${t.data.length} values do not fill shape [${t.shape.join(', ')}]`,
      );
    }
    header[name] = {
      dtype: FROM_DTYPE[t.dtype],
      shape: t.shape,
      data_offsets: [offset, offset + bytes.length],
    };
    parts.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  const pad = (8 - ((Buffer.byteLength(json) + 8) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
