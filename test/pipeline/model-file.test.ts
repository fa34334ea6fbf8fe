import { describe, expect, it } from 'vitest';
import { parseModel, serializeModel } from '../../src/pipeline/model-file.js';
import { tinyModel } from '../helpers.js';
import { parseSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';
import { KensaError } from '../../src/util/errors.js';

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
