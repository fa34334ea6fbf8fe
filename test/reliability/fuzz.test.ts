/**
 * Property-based robustness: random and mutated bytes fed to every reader kensa points at user files.
 * Each must return or throw a KensaError — never crash, hang or allocate without bound. Bounded runs.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCheckpoint } from '../../src/backbone/checkpoint.js';
import { loadImage } from '../../src/image/load.js';
import { parseSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';
import { parseModel, serializeModel } from '../../src/pipeline/contracts/model-file.js';
import { KensaError } from '../../src/util/errors.js';
import { fixture, tinyModel } from '../helpers.js';

/** Runs f; passes if it returns or throws a KensaError. */
function returnsOrRefuses(f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch (error) {
    if (error instanceof KensaError) return true;
    throw error;
  }
}

/** Byte strings derived from a valid file: flipped bytes, cuts, splices of random data. */
function mutations(valid: Uint8Array) {
  const at = fc.nat({ max: Math.max(0, valid.length - 1) });
  return fc.oneof(
    fc
      .tuple(at, fc.integer({ min: 0, max: 255 }))
      .map(([i, b]) => Uint8Array.from(valid, (v, k) => (k === i ? b : v))),
    fc.array(fc.tuple(at, fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 16 }).map((flips) => {
      const out = valid.slice();
      for (const [i, b] of flips) out[i] = b;
      return out;
    }),
    at.map((n) => valid.slice(0, n)),
    fc
      .tuple(at, fc.uint8Array({ maxLength: 64 }))
      .map(([i, junk]) => Uint8Array.from([...valid.slice(0, i), ...junk, ...valid.slice(i)])),
    fc.uint8Array({ maxLength: 512 }),
  );
}

const seed = 20261126;
const checkpointFiles = ['cases.pth', 'cases_legacy.pth'].map((f) => readFileSync(fixture('checkpoints', f)));
const safetensorsFile = serializeSafetensors(
  [
    ['a', { dtype: 'float32', shape: [2, 3], data: new Float32Array(6).fill(1.5) }],
    ['b', { dtype: 'int64', shape: [2], data: new BigInt64Array([1n, 2n]) }],
  ],
  { format: 'x' },
);

describe('fuzzing the readers (fast-check, bounded)', () => {
  it('safetensors: mutated files and random headers', () => {
    fc.assert(
      fc.property(mutations(safetensorsFile), (bytes) =>
        returnsOrRefuses(() => parseSafetensors(bytes, 'f.safetensors')),
      ),
      { seed, numRuns: 400 },
    );
    const header = fc.record({
      dtype: fc.constantFrom('F32', 'F16', 'I64', 'U8', 'XX'),
      shape: fc.array(fc.integer({ min: -3, max: 2 ** 40 }), { maxLength: 4 }),
      data_offsets: fc.array(fc.integer({ min: -10, max: 2 ** 53 }), { maxLength: 3 }),
    });
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 8 }), header, { maxKeys: 4 }),
        fc.uint8Array({ maxLength: 64 }),
        (h, data) => {
          const json = new TextEncoder().encode(JSON.stringify(h));
          const bytes = new Uint8Array(8 + json.length + data.length);
          new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
          bytes.set(json, 8);
          bytes.set(data, 8 + json.length);
          return returnsOrRefuses(() => parseSafetensors(bytes, 'f.safetensors'));
        },
      ),
      { seed, numRuns: 400 },
    );
  });

  it('PyTorch checkpoints (zip and legacy pickle): mutated files', () => {
    for (const valid of checkpointFiles) {
      fc.assert(
        fc.property(mutations(valid), (bytes) => returnsOrRefuses(() => parseCheckpoint(bytes, 'c.pth'))),
        { seed, numRuns: 300 },
      );
    }
  });

  it('model files: mutated headers and data', () => {
    const model = serializeModel(tinyModel());
    fc.assert(
      fc.property(mutations(model), (bytes) => returnsOrRefuses(() => parseModel(bytes, 'm.kensa'))),
      { seed, numRuns: 200 },
    );
  });

  it('images: mutated PNG and JPEG files on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kensa-fuzz-'));
    const sharp = (await import('sharp')).default;
    const raw = Buffer.alloc(16 * 16 * 3).map((_, i) => (i * 37) & 255);
    const valid = [
      new Uint8Array(
        await sharp(raw, { raw: { width: 16, height: 16, channels: 3 } })
          .png()
          .toBuffer(),
      ),
      new Uint8Array(
        await sharp(raw, { raw: { width: 16, height: 16, channels: 3 } })
          .jpeg()
          .toBuffer(),
      ),
    ];
    let n = 0;
    for (const v of valid) {
      await fc.assert(
        fc.asyncProperty(mutations(v), async (bytes) => {
          const path = join(dir, `f${n++}.img`);
          writeFileSync(path, bytes);
          try {
            await loadImage(path, { mode: 'resize', size: 32 }, { pixelLimit: 10_000_000 });
          } catch (error) {
            expect(error).toBeInstanceOf(KensaError);
          }
        }),
        { seed, numRuns: 150 },
      );
    }
  });
});
