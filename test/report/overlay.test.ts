/** The overlay's opacity: 0 shows the photograph alone (with the boxes), 1 the heat map alone. */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { jet } from '../../src/report/colormap.js';
import { overlayPng } from '../../src/report/figures.js';

describe('overlay opacity', () => {
  it('mixes the photograph and the heat map in the proportion asked', async () => {
    const [W, H] = [32, 16];
    const rgb = new Uint8Array(W * H * 3).fill(100);
    const png = await sharp(Buffer.from(rgb), { raw: { width: W, height: H, channels: 3 } })
      .png()
      .toBuffer();
    const map = new Float32Array(W * H).fill(1);
    const g = {
      resizedWidth: W,
      resizedHeight: H,
      left: 0,
      top: 0,
      inputWidth: W,
      inputHeight: H,
      scaleX: 1,
      scaleY: 1,
    };
    const pixel = async (opacity: number) => {
      const out = await overlayPng(png, map, g, [0, 1], [], rgb, 1024, opacity);
      const { data } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
      return Array.from(data.subarray(0, 3));
    };
    const hot = jet(1);
    expect(await pixel(0)).toEqual([100, 100, 100]);
    expect(await pixel(1)).toEqual(hot);
    expect(await pixel(0.25)).toEqual(hot.map((c) => Math.round(0.75 * 100 + 0.25 * c)));
  });
});
