/** A dense, row-major tensor as the readers return it: the raw element type is kept until asked for. */

export type DType =
  'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export type TensorData =
  | Float32Array
  | Float64Array
  | Uint16Array // float16 and bfloat16 bit patterns
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array; // uint8 and bool

export interface Tensor {
  dtype: DType;
  shape: number[];
  data: TensorData;
}

export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A zero-filled typed array of `count` elements of `dtype` (float16/bfloat16 as bit patterns). */
export function emptyTensorData(dtype: DType, count: number): TensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(count);
    case 'float64':
      return new Float64Array(count);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(count);
    case 'int64':
      return new BigInt64Array(count);
    case 'int32':
      return new Int32Array(count);
    case 'int16':
      return new Int16Array(count);
    case 'int8':
      return new Int8Array(count);
    case 'uint8':
    case 'bool':
      return new Uint8Array(count);
  }
}

/** Copies `count` elements of `dtype` from little-endian bytes into a fresh, aligned typed array. */
export function typedArrayFromBytes(dtype: DType, bytes: Uint8Array, count: number): TensorData {
  const out = emptyTensorData(dtype, count);
  new Uint8Array(out.buffer).set(bytes.subarray(0, count * DTYPE_BYTES[dtype]));
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The tensor's values as float32 (a copy unless it already is float32). */
export function toFloat32(t: Tensor): Float32Array {
  const { data } = t;
  if (t.dtype === 'float32') return data as Float32Array;
  const out = new Float32Array(data.length);
  if (t.dtype === 'float16') {
    for (let i = 0; i < data.length; i++) out[i] = halfToFloat((data as Uint16Array)[i]);
  } else if (t.dtype === 'bfloat16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < data.length; i++) bits[i] = (data as Uint16Array)[i] << 16;
  } else if (t.dtype === 'int64') {
    for (let i = 0; i < data.length; i++) out[i] = Number((data as BigInt64Array)[i]);
  } else {
    for (let i = 0; i < data.length; i++) out[i] = Number(data[i]);
  }
  return out;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
