import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { PadimState } from '../src/models/padim/model.js';
import type { KensaModel } from '../src/pipeline/contracts/model-file.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
export const fixture = (...parts: string[]) => join(FIXTURES, ...parts);

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
