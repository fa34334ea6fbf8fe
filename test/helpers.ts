import { mkdirSync, readdirSync, renameSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { PadimState } from '../src/models/padim/model.js';
import type { KensaModel } from '../src/pipeline/contracts/model-file.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
export const fixture = (...parts: string[]) => join(FIXTURES, ...parts);

/**
 * A labelled set for kensa classify: the first `n` test images (by name) of each defect type of a data
 * set moved into train/<type>/.
 */
export function moveDefectsToTrain(data: string, n: number): void {
  for (const type of readdirSync(join(data, 'test')).filter((t) => t !== 'good')) {
    mkdirSync(join(data, 'train', type));
    for (const f of readdirSync(join(data, 'test', type))
      .sort()
      .slice(0, n))
      renameSync(join(data, 'test', type, f), join(data, 'train', type, f));
  }
}

/** max |a - b| / max |b|: the error relative to the reference's scale. */
export function relativeMaxError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let err = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
}

/** A valid, tiny PaDiM model (64 positions, d = 2) for file-format tests. */
export function tinyModel(): KensaModel {
  const P = 64;
  const d = 2;
  const state: PadimState = {
    method: 'padim',
    layout: { channels: [1, 1, 1], index: Int32Array.from([0, 2]), height: 8, width: 8 },
    mean: new Float32Array(P * d).fill(0.5),
    // identity matrices: a precision is symmetric positive definite
    precision: Float32Array.from({ length: P * d * d }, (_, i) => ((i % (d * d)) % (d + 1) === 0 ? 1 : 0)),
    count: 5,
    seed: 0,
    epsilon: 0.01,
  };
  return {
    meta: {
      format: 'kensa-model',
      format_version: 2,
      method: 'padim',
      kensa_version: '0.0.0',
      backbone: {
        name: 'efficientnet_lite0',
        weights_sha256: 'ab',
        weights_official: true,
        channels: [1, 1, 1],
      },
      preprocess: { mode: 'resize', size: 32 },
      map: { sigma: 4, padding: 'reflect' },
      training: { train_images: 5, skipped: 0, seed: 0, folds: 5 },
      calibration: {
        mode: 'kfold',
        folds: 5,
        quantile: 0.99,
        scores: { count: 5, min: 1, median: 1, mean: 1, max: 1 },
        false_alarm_bound_95: 0.6,
        display: [0, 1.5],
      },
      thresholds: { fpr0: 1, quantile: 1 },
      ...{ padim: { d, seed: 0, epsilon: 0.01, grid: [8, 8], count: 5 } },
    },
    state,
    calibrationScores: Float32Array.from([1, 1, 1, 1, 1]),
  };
}

/** A BMP of RGB pixels at 1, 4, 8 (palette of grays from the red channel), 16 (5-5-5), 24 or 32 bits. */
export function encodeBmp(rgb: Uint8Array, width: number, height: number, bpp: number): Buffer {
  const palette = bpp <= 8 ? 1 << bpp : 0;
  const rowBytes = Math.ceil((width * bpp) / 32) * 4;
  const offset = 14 + 40 + palette * 4;
  const out = Buffer.alloc(offset + rowBytes * height);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(offset, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(bpp, 28);
  out.writeUInt32LE(palette, 46);
  for (let i = 0; i < palette; i++) {
    const v = Math.round((255 * i) / (palette - 1));
    out.writeUInt32LE(v | (v << 8) | (v << 16), 54 + 4 * i);
  }
  for (let y = 0; y < height; y++) {
    const row = offset + (height - 1 - y) * rowBytes;
    for (let x = 0; x < width; x++) {
      const [r, g, b] = rgb.subarray((y * width + x) * 3, (y * width + x) * 3 + 3);
      if (bpp <= 8) {
        const index = Math.round((r / 255) * (palette - 1));
        const bit = x * bpp;
        out[row + (bit >> 3)] |= index << (8 - bpp - (bit & 7));
      } else if (bpp === 16) out.writeUInt16LE(((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3), row + x * 2);
      else if (bpp === 24) out.set([b, g, r], row + x * 3);
      else out.set([b, g, r, 0], row + x * 4);
    }
  }
  return out;
}
