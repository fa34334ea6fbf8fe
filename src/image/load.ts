/**
 * Decoding with sharp: PNG, JPEG, BMP, TIFF (and what else libvips reads); 8 or 16 bit; gray, RGB, RGBA or
 * CMYK; EXIF orientation applied. Produces the network input (ImageNet-normalised float32 CHW) and the
 * 8-bit RGB pixels of the same square (for figures). Masks load the same way, with nearest-neighbour
 * resizing, as 0/1.
 */
import sharp from 'sharp';
import { KensaError } from '../util/errors.js';
import {
  geometry,
  IMAGENET_MEAN,
  IMAGENET_STD,
  inputSize,
  type Geometry,
  type Preprocess,
} from './preprocess.js';

/** Default refusal limit for decoding (pixels), against decompression bombs; large camera images pass. */
export const DEFAULT_PIXEL_LIMIT = 100_000_000;

export interface LoadedImage {
  /** 3×S×S, normalised. */
  tensor: Float32Array;
  /** S×S×3 RGB bytes of the network input square. */
  rgb: Uint8Array;
  width: number;
  height: number;
  geometry: Geometry;
}

export interface LoadOptions {
  pixelLimit?: number;
}

function decodeError(file: string, error: unknown): KensaError {
  const reason = (error as Error).message ?? String(error);
  if (/pixel limit/i.test(reason)) {
    return new KensaError(
      'E_FORMAT',
      `the image is larger than the pixel limit; raise it with --pixel-limit if it is genuine (${reason})`,
      {
        file,
        cause: error,
      },
    );
  }
  return new KensaError(
    'E_FORMAT',
    `cannot decode the image (${reason}). Check that it is a PNG, JPEG, BMP or TIFF file and not truncated`,
    {
      file,
      cause: error,
    },
  );
}

function pipeline(
  file: string,
  p: Preprocess,
  width: number,
  height: number,
  nearest: boolean,
  pixelLimit: number,
) {
  const g = geometry(p, width, height);
  const kernel = nearest ? 'nearest' : 'linear';
  let img = sharp(file, { limitInputPixels: pixelLimit, failOn: 'error' }).autoOrient();
  img = img.resize(g.resizedWidth, g.resizedHeight, { fit: 'fill', kernel });
  if (p.mode === 'crop') img = img.extract({ left: g.left, top: g.top, width: p.crop, height: p.crop });
  return { img, g };
}

async function orientedSize(file: string, pixelLimit: number): Promise<{ width: number; height: number }> {
  const meta = await sharp(file, { limitInputPixels: pixelLimit }).metadata();
  if (!meta.width || !meta.height) throw new Error('no image dimensions');
  // EXIF orientations 5-8 swap width and height
  return (meta.orientation ?? 1) >= 5
    ? { width: meta.height, height: meta.width }
    : { width: meta.width, height: meta.height };
}

export async function loadImage(
  file: string,
  p: Preprocess,
  options: LoadOptions = {},
): Promise<LoadedImage> {
  const pixelLimit = options.pixelLimit ?? DEFAULT_PIXEL_LIMIT;
  try {
    const { width, height } = await orientedSize(file, pixelLimit);
    const { img, g } = pipeline(file, p, width, height, false, pixelLimit);
    const { data, info } = await img
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    const s = inputSize(p);
    if (info.width !== s || info.height !== s)
      throw new Error(`decoded to ${info.width}×${info.height}, expected ${s}×${s}`);
    const rgb = new Uint8Array(s * s * 3);
    if (info.channels === 3) rgb.set(data);
    else
      for (let i = 0; i < s * s; i++) rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = data[i * info.channels];
    const tensor = new Float32Array(3 * s * s);
    for (let c = 0; c < 3; c++) {
      const m = IMAGENET_MEAN[c];
      const sd = IMAGENET_STD[c];
      const plane = c * s * s;
      for (let i = 0; i < s * s; i++) tensor[plane + i] = (rgb[i * 3 + c] / 255 - m) / sd;
    }
    return { tensor, rgb, width, height, geometry: g };
  } catch (error) {
    throw error instanceof KensaError ? error : decodeError(file, error);
  }
}

export interface LoadedMask {
  /** S×S, 1 where the mask value is > 127. */
  mask: Uint8Array;
  /** What was odd about the file (size differs from its image, values not binary), for a warning. */
  warnings: string[];
}

/**
 * A mask resized (nearest neighbour) with the same geometry as its image: 1 where the value is > 127.
 * A mask of another size than its image is resized to it, and a mask with values other than 0 and 255
 * (or 0 and 1) is thresholded at 127; both are reported as warnings.
 */
export async function loadMask(
  file: string,
  p: Preprocess,
  imageWidth: number,
  imageHeight: number,
  options: LoadOptions = {},
): Promise<LoadedMask> {
  const pixelLimit = options.pixelLimit ?? DEFAULT_PIXEL_LIMIT;
  try {
    const warnings: string[] = [];
    const { width, height } = await orientedSize(file, pixelLimit);
    if (width !== imageWidth || height !== imageHeight) {
      warnings.push(
        `${file}: the mask is ${width}×${height} but its image is ${imageWidth}×${imageHeight}; it was resized (nearest neighbour)`,
      );
    }
    const { img } = pipeline(file, p, imageWidth, imageHeight, true, pixelLimit);
    const { data, info } = await img
      .removeAlpha()
      .toColourspace('b-w')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    const mask = new Uint8Array(info.width * info.height);
    let odd = 0;
    const ones = data.some((v, i) => i % info.channels === 0 && v > 1);
    for (let i = 0; i < mask.length; i++) {
      const v = data[i * info.channels];
      if (v !== 0 && v !== 255 && !(v === 1 && !ones)) odd++;
      mask[i] = v > 127 || (v === 1 && !ones) ? 1 : 0;
    }
    if (odd > 0)
      warnings.push(
        `${file}: the mask is not binary (${odd} pixels neither 0 nor 255); values above 127 count as defect`,
      );
    return { mask, warnings };
  } catch (error) {
    throw error instanceof KensaError ? error : decodeError(file, error);
  }
}
