/**
 * BMP decoding (Windows bitmaps, the format many industrial cameras and their software save), which
 * sharp's libvips does not read: BITMAPINFOHEADER and later headers; 1, 4 and 8 bits with a palette,
 * 16 bits (5-5-5, or bit fields), 24 bits, 32 bits (with or without bit fields and alpha);
 * uncompressed, bottom-up or top-down. Run-length-compressed files are refused with a clear message.
 * Output: raw 8-bit RGB (or RGBA) pixels, top row first, for sharp's raw input.
 */

export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3 | 4;
}

/** BMP files start with "BM". */
export const isBmp = (bytes: Uint8Array) => bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d;

/** Largest decoded image accepted here (the caller's pixel limit applies too). */
const MAX_PIXELS = 2 ** 31 / 4;

function maskShift(mask: number): { shift: number; bits: number } {
  if (mask === 0) return { shift: 0, bits: 0 };
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  let bits = 0;
  while (((mask >>> (shift + bits)) & 1) === 1) bits++;
  return { shift, bits };
}

/** Decodes a BMP; throws an Error with the reason when the file is not one kensa reads. */
export function decodeBmp(bytes: Uint8Array, pixelLimit = MAX_PIXELS): RawImage {
  if (!isBmp(bytes) || bytes.length < 26) throw new Error('not a BMP file');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dataOffset = v.getUint32(10, true);
  const headerSize = v.getUint32(14, true);
  if (headerSize < 40 || 14 + headerSize > bytes.length)
    throw new Error(`unsupported BMP header of ${headerSize} bytes`);
  const width = v.getInt32(18, true);
  const rawHeight = v.getInt32(22, true);
  const planes = v.getUint16(26, true);
  const bpp = v.getUint16(28, true);
  const compression = v.getUint32(30, true);
  const topDown = rawHeight < 0;
  const height = Math.abs(rawHeight);
  if (width <= 0 || height <= 0 || planes !== 1) throw new Error(`invalid BMP size ${width}×${rawHeight}`);
  if (width * height > Math.min(pixelLimit, MAX_PIXELS)) throw new Error('Input image exceeds pixel limit');
  // 0 = BI_RGB, 3 = BI_BITFIELDS, 6 = BI_ALPHABITFIELDS
  if (compression !== 0 && compression !== 3 && compression !== 6)
    throw new Error(
      `compressed BMP (compression ${compression}) is not supported; save it uncompressed or as PNG`,
    );
  if (![1, 4, 8, 16, 24, 32].includes(bpp))
    throw new Error(`BMP with ${bpp} bits per pixel is not supported`);
  const rowBytes = Math.ceil((width * bpp) / 32) * 4;
  if (dataOffset + rowBytes * height > bytes.length) throw new Error('the BMP file is truncated');

  let palette: Uint8Array | undefined;
  if (bpp <= 8) {
    const colours = v.getUint32(46, true) || 1 << bpp;
    const at = 14 + headerSize;
    if (colours > 256 || at + colours * 4 > dataOffset) throw new Error('invalid BMP palette');
    palette = new Uint8Array(256 * 3);
    for (let i = 0; i < colours; i++) {
      palette[i * 3] = bytes[at + i * 4 + 2];
      palette[i * 3 + 1] = bytes[at + i * 4 + 1];
      palette[i * 3 + 2] = bytes[at + i * 4];
    }
  }
  let masks: { shift: number; bits: number }[] | undefined;
  if (bpp === 16 || bpp === 32) {
    let m: number[];
    if (compression === 3 || compression === 6) {
      // masks follow a 40-byte header, or are part of a V4/V5 header
      const at = 14 + 40;
      if (at + 12 > bytes.length) throw new Error('invalid BMP bit fields');
      m = [v.getUint32(at, true), v.getUint32(at + 4, true), v.getUint32(at + 8, true)];
      m.push(headerSize >= 56 || compression === 6 ? v.getUint32(at + 12, true) : 0);
    } else {
      m = bpp === 16 ? [0x7c00, 0x03e0, 0x001f, 0] : [0x00ff0000, 0x0000ff00, 0x000000ff, 0];
    }
    masks = m.map(maskShift);
  }
  const alpha = bpp === 32 && masks !== undefined && masks[3].bits > 0;
  const channels = alpha ? 4 : 3;
  const out = new Uint8Array(width * height * channels);
  const scale = (value: number, f: { shift: number; bits: number }) =>
    f.bits === 0 ? 0 : Math.round((((value >>> f.shift) & ((1 << f.bits) - 1)) * 255) / ((1 << f.bits) - 1));
  for (let y = 0; y < height; y++) {
    const row = dataOffset + (topDown ? y : height - 1 - y) * rowBytes;
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * channels;
      if (palette) {
        const bit = x * bpp;
        const byte = bytes[row + (bit >> 3)];
        const index = bpp === 8 ? byte : (byte >> (8 - bpp - (bit & 7))) & ((1 << bpp) - 1);
        out[o] = palette[index * 3];
        out[o + 1] = palette[index * 3 + 1];
        out[o + 2] = palette[index * 3 + 2];
      } else if (bpp === 24) {
        out[o] = bytes[row + x * 3 + 2];
        out[o + 1] = bytes[row + x * 3 + 1];
        out[o + 2] = bytes[row + x * 3];
      } else {
        const value = bpp === 16 ? v.getUint16(row + x * 2, true) : v.getUint32(row + x * 4, true);
        out[o] = scale(value, masks![0]);
        out[o + 1] = scale(value, masks![1]);
        out[o + 2] = scale(value, masks![2]);
        if (alpha) out[o + 3] = scale(value, masks![3]);
      }
    }
  }
  return { data: out, width, height, channels };
}
