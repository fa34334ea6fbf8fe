/** Decoding what users actually have: every colour model and depth, EXIF rotation, masks that are off. */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadImage, loadMask, readProblem } from '../../src/image/load.js';
import { KensaError } from '../../src/util/errors.js';
import { encodeBmp } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kensa-images-'));
const W = 40;
const H = 24;
const square = { mode: 'resize' as const, size: 32 };
// a horizontal gradient, so that orientation and colour survive checks
const rgb = Buffer.alloc(W * H * 3);
for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) rgb.set([x * 6, 100, 255 - x * 6], (y * W + x) * 3);
const base = () => sharp(rgb, { raw: { width: W, height: H, channels: 3 } });
const file = (name: string) => join(dir, name);

beforeAll(async () => {
  await base().png().toFile(file('rgb.png'));
  await base().toColourspace('b-w').png().toFile(file('gray.png'));
  await base().ensureAlpha(0.5).png().toFile(file('rgba.png'));
  await base().png({ palette: true, colours: 16 }).toFile(file('palette.png'));
  await base().toColourspace('rgb16').png().toFile(file('sixteen.png'));
  await base().toColourspace('cmyk').jpeg().toFile(file('cmyk.jpg'));
  await base().tiff().toFile(file('rgb.tif'));
  // stored rotated by 90°, with EXIF orientation 6 saying "rotate 90° clockwise to display"
  await base().rotate(-90).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toFile(file('exif.jpg'));
  writeFileSync(file('empty.png'), '');
  writeFileSync(file('text.png'), 'this is not an image');
  const png = await base().png().toBuffer();
  writeFileSync(file('truncated.png'), png.subarray(0, png.length >> 1));
  writeFileSync(file('rgb-as.jpg'), png); // a PNG with the wrong extension
  // masks: another size than the image, and not binary
  await sharp(Buffer.alloc(20 * 12, 255), { raw: { width: 20, height: 12, channels: 1 } })
    .png()
    .toFile(file('small_mask.png'));
  await sharp(
    Buffer.alloc(W * H).map((_, i) => (i % 3) * 100),
    { raw: { width: W, height: H, channels: 1 } },
  )
    .png()
    .toFile(file('gray_mask.png'));
});

describe('image decoding', () => {
  it.each([
    'rgb.png',
    'gray.png',
    'rgba.png',
    'palette.png',
    'sixteen.png',
    'cmyk.jpg',
    'rgb.tif',
    'rgb-as.jpg',
  ])('%s decodes to the 3×S×S input', async (name) => {
    const im = await loadImage(file(name), square);
    expect(im.tensor.length).toBe(3 * 32 * 32);
    expect([im.width, im.height]).toEqual([W, H]);
    expect(im.tensor.every(Number.isFinite)).toBe(true);
    if (name !== 'gray.png') {
      // red grows to the right, blue falls: check it on the left and right edges of the middle row
      const r = (x: number) => im.rgb[(16 * 32 + x) * 3];
      expect(r(30)).toBeGreaterThan(r(1) + 100);
    }
  });

  it('applies the EXIF orientation', async () => {
    const im = await loadImage(file('exif.jpg'), square);
    expect([im.width, im.height]).toEqual([W, H]);
    const r = (x: number) => im.rgb[(16 * 32 + x) * 3];
    expect(r(30)).toBeGreaterThan(r(1) + 100);
  });

  it.each([
    ['empty.png', /empty\.png: cannot decode the image/],
    ['text.png', /text\.png: cannot decode the image/],
    ['truncated.png', /truncated\.png: cannot decode the image/],
    ['missing.png', /missing\.png: the file does not exist/],
  ])('%s: a KensaError that names the file', async (name, message) => {
    const error = await loadImage(file(name), square).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KensaError);
    expect((error as Error).message).toMatch(message);
  });

  it('says what really failed: permission, a folder, a FIFO (never opened) — not "cannot decode"', async () => {
    writeFileSync(file('locked.png'), await base().png().toBuffer());
    chmodSync(file('locked.png'), 0o000);
    // root reads any file; elsewhere the denial itself is checked, and the wording for its code everywhere
    if (process.getuid?.() !== 0) {
      await expect(loadImage(file('locked.png'), square)).rejects.toThrow(
        /locked\.png: permission denied: kensa may not read this file; check its permissions/,
      );
    }
    expect(readProblem('EACCES')).toBe(
      'permission denied: kensa may not read this file; check its permissions',
    );
    mkdirSync(file('folder.png'));
    await expect(loadImage(file('folder.png'), square)).rejects.toThrow(
      /folder\.png: this is a folder, not an image file/,
    );
    execFileSync('mkfifo', [file('pipe.png')]);
    await expect(loadImage(file('pipe.png'), square)).rejects.toThrow(
      /pipe\.png: this is not a regular file \(a pipe, socket or device\)/,
    );
  });

  it.each(['webp', 'avif', 'gif'])('decodes %s', async (format) => {
    const bytes = await base()
      .toFormat(format as 'webp')
      .toBuffer();
    writeFileSync(file(`x.${format}`), bytes);
    const im = await loadImage(file(`x.${format}`), square);
    expect([im.width, im.height]).toEqual([W, H]);
  });

  it.each([1, 4, 8, 16, 24, 32])('decodes a %i-bit BMP (which libvips does not read)', async (bpp) => {
    const px = await base().raw().toBuffer();
    writeFileSync(file(`b${bpp}.bmp`), encodeBmp(px, W, H, bpp));
    const im = await loadImage(file(`b${bpp}.bmp`), { mode: 'fit', size: 32 });
    expect([im.width, im.height]).toEqual([W, H]);
    if (bpp >= 16) {
      const r = (x: number) => im.rgb[(8 * im.geometry.inputWidth + x) * 3];
      expect(r(im.geometry.inputWidth - 2)).toBeGreaterThan(r(1) + 100);
    }
  });

  it('keeps the aspect ratio by default (about size² pixels, sides multiples of 16)', async () => {
    const im = await loadImage(file('rgb.png'), { mode: 'fit', size: 64 });
    expect([im.geometry.inputWidth, im.geometry.inputHeight]).toEqual([80, 48]);
    expect(im.tensor.length).toBe(3 * 80 * 48);
  });

  it('refuses images above the pixel limit before decoding them', async () => {
    await expect(loadImage(file('rgb.png'), square, { pixelLimit: 500 })).rejects.toThrow(
      /rgb\.png: the image is larger than the pixel limit; raise it with --pixel-limit/,
    );
  });

  it('resizes a mask of another size (nearest neighbour) and says so; thresholds a non-binary one', async () => {
    const small = await loadMask(file('small_mask.png'), square, W, H);
    expect(small.mask.every((v) => v === 1)).toBe(true);
    expect(small.warnings[0]).toMatch(
      /small_mask\.png: the mask is 20×12 but its image is 40×24; it was resized/,
    );
    const gray = await loadMask(file('gray_mask.png'), square, W, H);
    expect(gray.warnings[0]).toMatch(/gray_mask\.png: the mask is not binary/);
    expect(new Set(gray.mask)).toEqual(new Set([0, 1]));
  });
});
