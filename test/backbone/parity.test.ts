/**
 * Parity with PyTorch: reduced-width networks with seeded random weights (tools/make_fixtures.py),
 * stored in the different checkpoint formats, must give PyTorch's outputs on the same input.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Backbone } from '../../src/backbone/backbone.js';
import { readCheckpoint } from '../../src/backbone/checkpoint.js';
import { getBackbone } from '../../src/backbone/registry.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { toFloat32, type Tensor } from '../../src/util/tensor.js';
import { fixture, relativeMaxError } from '../helpers.js';

const CASES = [
  ['resnet18', 'resnet18_small.pth', 'torch zip'],
  ['wide_resnet50_2', 'wide_resnet50_2_small.pth', 'legacy pickle'],
  ['efficientnet_lite0', 'efficientnet_lite0_small.whl', 'legacy pickle inside a wheel'],
  ['efficientnet_lite1', 'efficientnet_lite1_small.safetensors', 'safetensors'],
  ['efficientnet_lite2', 'efficientnet_lite2_small.pth', 'torch zip'],
] as const;

let golden: Map<string, Tensor>;
beforeAll(async () => {
  golden = (await readSafetensors(fixture('backbones', 'golden.safetensors'))).tensors;
});

describe('backbone parity with PyTorch (seeded random weights, reduced width)', () => {
  for (const [name, file, format] of CASES) {
    it(`${name} (${format}) matches PyTorch at all three outputs`, async () => {
      const input = golden.get('input')!;
      const [batch, , height, width] = input.shape;
      const stateDict = await readCheckpoint(fixture('backbones', file));
      const backbone = await Backbone.fromStateDict(getBackbone(name), stateDict);
      try {
        const outputs = await backbone.extract(toFloat32(input), batch, height, width);
        outputs.forEach((out, i) => {
          const ref = golden.get(`${name}_small.layer${i + 1}`)!;
          expect(out.dims).toEqual(ref.shape);
          expect(relativeMaxError(out.data, toFloat32(ref))).toBeLessThanOrEqual(1e-4);
        });
        expect(outputs.map((o) => o.dims[2] * 4)).toEqual([height, height / 2, height / 4]);
      } finally {
        await backbone.dispose();
      }
    });
  }

  it('refuses input sizes that are not multiples of 16', async () => {
    const backbone = await Backbone.fromStateDict(
      getBackbone('resnet18'),
      await readCheckpoint(fixture('backbones', 'resnet18_small.pth')),
    );
    await expect(backbone.extract(new Float32Array(3 * 40 * 48), 1, 40, 48)).rejects.toThrow(
      'Expected a multiple of 16 (at least 16) for the input height but received 40',
    );
    await expect(backbone.extract(new Float32Array(10), 1, 32, 32)).rejects.toThrow(
      'the input has 10 values; a batch of 1 images of 3×32×32 needs 3072',
    );
    await backbone.dispose();
  });

  it('names the missing tensor when the weights belong to another architecture', async () => {
    const stateDict = await readCheckpoint(fixture('backbones', 'resnet18_small.pth'));
    await expect(Backbone.fromStateDict(getBackbone('efficientnet_lite0'), stateDict)).rejects.toThrow(
      /the weights lack '_conv_stem.weight', which efficientnet_lite0 needs/,
    );
  });
});
