import { describe, expect, it } from 'vitest';
import { parseModel, serializeModel, type KensaModel } from '../../src/pipeline/model-file.js';
import { parseSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';
import { KensaError } from '../../src/util/errors.js';

function tinyModel(): KensaModel {
  const P = 4;
  const d = 2;
  return {
    meta: {
      format: 'kensa-model',
      format_version: 1,
      method: 'padim',
      kensa_version: '0.0.0',
      backbone: {
        name: 'efficientnet_lite0',
        weights_sha256: 'ab',
        weights_official: true,
        channels: [1, 1, 1],
      },
      preprocess: { mode: 'resize', size: 8 },
      padim: { d, seed: 0, epsilon: 0.01, sigma: 4, grid: [2, 2] },
      training: { train_images: 5, validation_images: 1, validation_fraction: 0.1, seed: 0 },
      calibration: {
        quantile: 0.99,
        validation: { count: 1, min: 1, median: 1, mean: 1, max: 1 },
        display: [0, 1.5],
      },
      thresholds: { fpr0: 1, quantile: 1 },
    },
    stats: {
      layout: { channels: [1, 1, 1], index: Int32Array.from([0, 2]), height: 2, width: 2 },
      mean: new Float32Array(P * d).fill(0.5),
      precision: new Float32Array(P * d * d).fill(1),
      count: 5,
    },
    validationScores: Float32Array.from([1]),
  };
}

describe('model file', () => {
  it('round-trips, byte-identically', () => {
    const bytes = serializeModel(tinyModel());
    const back = parseModel(bytes, 'm.kensa');
    expect(back.meta).toEqual(tinyModel().meta);
    expect(Buffer.from(serializeModel(back)).equals(Buffer.from(bytes))).toBe(true);
  });

  it('refuses another format version with a message that says what to do', () => {
    const { tensors, metadata } = parseSafetensors(serializeModel(tinyModel()));
    const other = serializeSafetensors([...tensors], { ...metadata, format_version: '99' });
    expect(() => parseModel(other, 'm.kensa')).toThrow(
      'm.kensa: model format version 99 is not supported by this kensa (it reads version 1). Use the kensa version that wrote it, or train the model again',
    );
  });

  it('refuses truncated files and non-finite statistics', () => {
    const bytes = serializeModel(tinyModel());
    expect(() => parseModel(bytes.subarray(0, bytes.length - 10), 'm.kensa')).toThrow(KensaError);
    const bad = tinyModel();
    bad.stats.precision[3] = NaN;
    expect(() => parseModel(serializeModel(bad), 'm.kensa')).toThrow(
      'm.kensa: not a usable kensa model: it holds non-finite numbers',
    );
  });
});
