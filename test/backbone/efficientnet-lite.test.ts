import { describe, expect, it } from 'vitest';
import { liteBlocks, samePadding } from '../../src/backbone/architectures/efficientnet-lite.js';
import { getBackbone, type EfficientNetLiteArchitecture } from '../../src/backbone/registry.js';

const arch = (name: string) => getBackbone(name).architecture as EfficientNetLiteArchitecture;

describe('EfficientNet-Lite layout', () => {
  it('computes TensorFlow "same" padding as Conv2dStaticSamePadding does', () => {
    expect(samePadding(224, 3, 2)).toEqual([0, 0, 1, 1]);
    expect(samePadding(56, 5, 2)).toEqual([1, 1, 2, 2]);
    expect(samePadding(65, 5, 2)).toEqual([2, 2, 2, 2]);
    expect(samePadding(14, 5, 1)).toEqual([2, 2, 2, 2]);
  });

  it('has the block counts of lite0/1/2 (depth 1.0, 1.1, 1.2; first and last stage fixed)', () => {
    expect(liteBlocks(arch('efficientnet_lite0')).length).toBe(16);
    expect(liteBlocks(arch('efficientnet_lite1')).length).toBe(1 + 3 + 3 + 4 + 4 + 5 + 1);
    expect(liteBlocks(arch('efficientnet_lite2')).length).toBe(1 + 3 + 3 + 4 + 4 + 5 + 1);
  });

  it('pads lite2 symmetrically where its 260-px training size makes odd sizes', () => {
    const b = liteBlocks(arch('efficientnet_lite2'));
    const firstAtStride8 = b.find((x) => x.outStride === 8)!;
    expect(firstAtStride8.pads).toEqual([2, 2, 2, 2]);
    const l0 = liteBlocks(arch('efficientnet_lite0')).find((x) => x.outStride === 8)!;
    expect(l0.pads).toEqual([1, 1, 2, 2]);
  });
});
