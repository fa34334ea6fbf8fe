/** The overlay's opacity: 0 shows the photograph alone (with the boxes), 1 the heat map alone. */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { jet } from '../../src/report/colormap.js';
import { overlayPng, shrinkMap, thumbnailJpeg } from '../../src/report/figures.js';

/** A uniform gray image of W×H as RGB bytes and PNG, and the geometry of processing it as it is. */
async function grayImage(W: number, H: number) {
  const rgb = new Uint8Array(W * H * 3).fill(100);
  const png = await sharp(Buffer.from(rgb), { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toBuffer();
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
  return { rgb, png, g };
}

describe('overlay opacity', () => {
  it('mixes the photograph and the heat map in the proportion asked', async () => {
    const [W, H] = [32, 16];
    const { rgb, png, g } = await grayImage(W, H);
    const map = new Float32Array(W * H).fill(1);
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

describe('pictures of a large image', () => {
  it('shrink the map by averaging the values each picture pixel covers', () => {
    const map = Float32Array.from({ length: 6 * 4 }, (_, i) => i); // 6 wide, 4 high
    expect(Array.from(shrinkMap(map, 6, 4, 3, 2))).toEqual([3.5, 5.5, 7.5, 15.5, 17.5, 19.5]);
    expect(Array.from(shrinkMap(map, 6, 4, 2, 1))).toEqual([
      (0 + 1 + 2 + 6 + 7 + 8 + 12 + 13 + 14 + 18 + 19 + 20) / 12,
      (3 + 4 + 5 + 9 + 10 + 11 + 15 + 16 + 17 + 21 + 22 + 23) / 12,
    ]);
    expect(shrinkMap(map, 6, 4, 6, 4)).toBe(map);
    expect(() => shrinkMap(map, 6, 4, 7, 2)).toThrow(RangeError);
  });

  it('colour the overlay and the thumbnail where the map is high, at the picture’s size', async () => {
    const [W, H] = [2400, 1200];
    const { rgb, png, g } = await grayImage(W, H);
    // hot in the right half only
    const map = Float32Array.from({ length: W * H }, (_, i) => (i % W >= W / 2 ? 1 : 0));
    const overlay = await sharp(await overlayPng(png, map, g, [0, 1], [], rgb, 1024, 1))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([overlay.info.width, overlay.info.height]).toEqual([1024, 512]);
    const at = (x: number, y: number) =>
      Array.from(overlay.data.subarray((y * 1024 + x) * 3, (y * 1024 + x) * 3 + 3));
    expect(at(10, 10)).toEqual(jet(0));
    expect(at(1000, 500)).toEqual(jet(1));
    const thumb = await sharp(await thumbnailJpeg(rgb, map, W, H, [0, 1])).metadata();
    expect([thumb.width, thumb.height]).toEqual([160, 80]);
  });
});
