import { closeSync, mkdtempSync, openSync, readFileSync, writeSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
} from '../../src/io/safetensors.js';
import type { Tensor } from '../../src/util/tensor.js';

const tensors: [string, Tensor][] = [
  ['mean', { dtype: 'float32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) }],
  ['index', { dtype: 'int32', shape: [3], data: new Int32Array([7, -1, 9]) }],
  ['cov', { dtype: 'float64', shape: [1, 2], data: new Float64Array([0.1, 1e300]) }],
];

function withHeader(header: object, data = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('safetensors', () => {
  it('round-trips tensors and metadata, byte-identically', () => {
    const a = serializeSafetensors(tensors, { format: 'kensa', version: '1' });
    const b = serializeSafetensors(tensors, { format: 'kensa', version: '1' });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    const back = parseSafetensors(a);
    expect(back.metadata).toEqual({ format: 'kensa', version: '1' });
    for (const [name, t] of tensors) expect(back.tensors.get(name)).toEqual(t);
    // header length is a multiple of 8 so that the data is aligned
    expect(Number(new DataView(a.buffer).getBigUint64(0, true)) % 8).toBe(0);
  });

  it('rejects headers that lie about sizes and offsets, naming the file', () => {
    const f32 = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
    expect(() => parseSafetensors(withHeader({ w: f32 }, new Uint8Array(4)), 'm.safetensors')).toThrow(
      "m.safetensors: not a valid safetensors file: tensor 'w' has data offsets [0,8] outside the 4 data bytes",
    );
    expect(() => parseSafetensors(withHeader({ w: { ...f32, shape: [3] } }, new Uint8Array(8)))).toThrow(
      'does not fit its 8 bytes',
    );
    expect(() => parseSafetensors(withHeader({ w: { ...f32, dtype: 'Q7' } }, new Uint8Array(8)))).toThrow(
      'unsupported dtype "Q7"',
    );
    expect(() => parseSafetensors(withHeader({ w: { ...f32, shape: [-2] } }, new Uint8Array(8)))).toThrow(
      'invalid shape',
    );
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 60n, true);
    expect(() => parseSafetensors(huge)).toThrow(
      /the header claims 1152921504606846976 bytes but the file has 8/,
    );
    expect(() => parseSafetensors(new Uint8Array(3))).toThrow('it has 3 bytes');
  });

  it('writes tensor by tensor the same bytes as in memory, and reads them back from disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kensa-st-'));
    await writeSafetensors(join(dir, 'a.safetensors'), tensors, { format: 'kensa' }, { reserve: 100 });
    const bytes = readFileSync(join(dir, 'a.safetensors'));
    expect(
      bytes.equals(Buffer.from(serializeSafetensors(tensors, { format: 'kensa' }, { reserve: 100 }))),
    ).toBe(true);
    const back = await readSafetensors(join(dir, 'a.safetensors'));
    for (const [name, t] of tensors) expect(back.tensors.get(name)).toEqual(t);
  });

  it('reads files over 2 GiB (header first, then each tensor at its offset)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kensa-st-big-'));
    const file = join(dir, 'big.safetensors');
    const n = 2 ** 31 + 64;
    const header = new TextEncoder().encode(
      JSON.stringify({ big: { dtype: 'U8', shape: [n], data_offsets: [0, n] } }).padEnd(96),
    );
    const fd = openSync(file, 'w');
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    writeSync(fd, length);
    writeSync(fd, header);
    // a sparse file: zeros, with a marker in the last byte
    ftruncateSync(fd, 8 + header.length + n);
    writeSync(fd, Buffer.from([7]), 0, 1, 8 + header.length + n - 1);
    closeSync(fd);
    const { tensors: read } = await readSafetensors(file);
    const big = read.get('big')!;
    expect(big.shape).toEqual([n]);
    expect(big.data[n - 1]).toBe(7);
    expect(big.data[Math.floor(n / 2)]).toBe(0);
  });
});
