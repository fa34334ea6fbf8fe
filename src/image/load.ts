/**
 * Decoding with sharp: PNG, JPEG, BMP, TIFF, WebP, AVIF, GIF (what libvips reads); 8 or 16 bit; gray, RGB,
 * RGBA or CMYK; EXIF orientation applied. Produces the network input (ImageNet-normalised float32 CHW at
 * the processed size, preprocess.ts) and the 8-bit RGB pixels of the same image (for figures). Masks load
 * the same way, with nearest-neighbour resizing, as 0/1.
 *
 * The file is read first and decoded from memory, so that what went wrong is said plainly: a file that
 * cannot be read (missing, no permission, a folder, a FIFO) is not reported as an image that cannot be
 * decoded, and a FIFO is never opened (it would wait for a writer forever).
 */
import { stat, readFile } from 'node:fs/promises';
import sharp, { type Sharp } from 'sharp';
import { KensaError } from '../util/errors.js';
import { OPTIONS } from '../options.js';
import { decodeBmp, isBmp } from './bmp.js';
import { geometry, IMAGENET_MEAN, IMAGENET_STD, type Geometry, type Preprocess } from './preprocess.js';
import { tr } from '../i18n.js';

/** Default refusal limit for decoding (pixels), against decompression bombs; large camera images pass. */
export const DEFAULT_PIXEL_LIMIT = 100_000_000;

export interface LoadedImage {
  /** 3×H×W at the processed size, normalised. */
  tensor: Float32Array;
  /** H×W×3 RGB bytes of the processed image. */
  rgb: Uint8Array;
  /** The original (oriented) image size. */
  width: number;
  height: number;
  geometry: Geometry;
}

export interface LoadOptions {
  pixelLimit?: number;
}

/** Why a file could not be read, in words, from a Node.js error code (`what`: what the file should be). */
export function readProblem(code: string | undefined, what = 'an image file'): string {
  switch (code) {
    case 'ENOENT':
      return 'the file does not exist (it may have been moved or deleted)';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied: kensa may not read this file; check its permissions';
    case 'EISDIR':
      return `this is a folder, not ${what}`;
    case 'ELOOP':
      return 'the path is a loop of symbolic links';
    case 'ENAMETOOLONG':
      return 'the path is too long for this file system';
    default:
      return `the file cannot be read (${code ?? 'unknown error'})`;
  }
}

/** The bytes of an image file; a file that is not a regular file (folder, FIFO, device) is refused unread. */
export async function readImageFile(file: string): Promise<Buffer> {
  try {
    const s = await stat(file);
    if (!s.isFile()) {
      throw new KensaError(
        'E_IO',
        s.isDirectory()
          ? readProblem('EISDIR')
          : 'this is not a regular file (a pipe, socket or device); give an image file',
        { file },
      );
    }
    return await readFile(file);
  } catch (error) {
    if (error instanceof KensaError) throw error;
    throw new KensaError('E_IO', readProblem((error as NodeJS.ErrnoException).code), { file, cause: error });
  }
}

function decodeError(file: string, error: unknown): KensaError {
  if (error instanceof NotRasterError)
    return new KensaError('E_FORMAT', error.message, { file, cause: error });
  const reason = (error as Error).message ?? String(error);
  if (/pixel limit/i.test(reason)) {
    return new KensaError(
      'E_FORMAT',
      `the image is larger than the pixel limit; raise it with --pixel-limit if it is genuine (${reason})`,
      { file, cause: error },
    );
  }
  return new KensaError(
    'E_FORMAT',
    `cannot decode the image (${reason}). Check that it is an image file (PNG, JPEG, BMP, TIFF, WebP, ...) and not truncated`,
    { file, cause: error },
  );
}

/**
 * The raster formats kensa decodes (as libvips names them; BMP is decoded by image/bmp.ts). Anything else
 * libvips could open — SVG (which may carry scripts), PDF, its own formats — is refused: kensa inspects
 * photographs, and a service must never store or render a document it was sent.
 */
export const RASTER_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif', 'jp2', 'jxl', 'ppm'];

/** Bytes per sample of libvips' band formats. */
const SAMPLE_BYTES: Record<string, number> = {
  uchar: 1,
  char: 1,
  ushort: 2,
  short: 2,
  uint: 4,
  int: 4,
  float: 4,
  complex: 8,
  double: 8,
  dpcomplex: 16,
};

/**
 * Decoding bytes allowed per pixel of the pixel limit: an 8-bit RGBA image at the limit. A 16-bit RGBA
 * image takes twice that, and an interlaced (or progressive) one is decoded whole before it can be
 * resized — twice again — so the limit counts bytes, not pixels alone.
 */
export const DECODE_BYTES_PER_LIMIT_PIXEL = 4;

/** What decoding an image holds at once: width × height × channels × bytes per sample, ×2 interlaced. */
export function decodeBytes(info: {
  width: number;
  height: number;
  channels?: number;
  depth?: string;
  interlaced?: boolean;
}): number {
  const sample = SAMPLE_BYTES[info.depth ?? 'uchar'] ?? 8;
  return info.width * info.height * (info.channels ?? 3) * sample * (info.interlaced ? 2 : 1);
}

/**
 * Bytes being decoded now, process-wide (test, predict and the service's batches all decode through
 * here): each decode takes its bytes from this budget first and waits while others hold it, so that
 * images decoded ahead or sent at once cannot add up beyond it. A single image larger than the budget
 * (still within the limit) is decoded alone.
 */
export const DECODE_BUDGET = 1024 * 2 ** 20;
let decoding = 0;
const waiting: (() => void)[] = [];
async function takeDecodeBytes(bytes: number): Promise<() => void> {
  while (decoding > 0 && decoding + bytes > DECODE_BUDGET) await new Promise<void>((r) => waiting.push(r));
  decoding += bytes;
  return () => {
    decoding -= bytes;
    waiting.splice(0).forEach((wake) => wake());
  };
}

/** A decoded source: its oriented size, and a fresh sharp pipeline over it (auto-oriented). */
interface Source {
  width: number;
  height: number;
  /** What decoding it holds at once (decodeBytes). */
  bytes: number;
  sharp: () => Sharp;
}

/** Opens image bytes: BMP through decodeBmp, everything else through libvips; the pixel limit first. */
async function openSource(bytes: Buffer, pixelLimit: number): Promise<Source> {
  if (isBmp(bytes)) {
    const raw = decodeBmp(bytes, pixelLimit);
    const input = { raw: { width: raw.width, height: raw.height, channels: raw.channels } };
    return {
      width: raw.width,
      height: raw.height,
      bytes: raw.data.byteLength,
      sharp: () => sharp(Buffer.from(raw.data.buffer), input),
    };
  }
  const meta = await sharp(bytes, { limitInputPixels: pixelLimit }).metadata();
  if (!RASTER_FORMATS.includes(meta.format ?? ''))
    throw new NotRasterError(
      `this is ${meta.format === 'svg' ? 'an SVG drawing' : `a ${meta.format ?? 'non-image'} file`}, not a raster photograph; kensa inspects camera images (PNG, JPEG, BMP, TIFF, WebP, ...)`,
    );
  if (!meta.width || !meta.height) throw new Error('no image dimensions');
  if (meta.width * meta.height > pixelLimit) throw new Error('Input image exceeds pixel limit');
  const info = {
    width: meta.width,
    height: meta.height,
    channels: meta.channels,
    depth: meta.depth,
    interlaced: meta.isProgressive === true,
  };
  const need = decodeBytes(info);
  const allowed = pixelLimit * DECODE_BYTES_PER_LIMIT_PIXEL;
  if (need > allowed)
    throw new Error(
      `Input image exceeds pixel limit: decoding it takes ${(need / 2 ** 20).toFixed(0)} MB (${meta.width}×${meta.height}, ` +
        `${meta.channels ?? 3} channels of ${8 * (SAMPLE_BYTES[meta.depth ?? 'uchar'] ?? 8)} bits${info.interlaced ? ', interlaced: decoded whole' : ''}), ` +
        `more than the ${(allowed / 2 ** 20).toFixed(0)} MB an image within the pixel limit may take`,
    );
  // EXIF orientations 5-8 swap width and height
  const swap = (meta.orientation ?? 1) >= 5;
  return {
    width: swap ? meta.height : meta.width,
    height: swap ? meta.width : meta.height,
    bytes: need,
    sharp: () => sharp(bytes, { limitInputPixels: pixelLimit, failOn: 'error' }).autoOrient(),
  };
}

/** Bytes that are not a raster image kensa decodes (SVG, PDF, ...): said as such, not as "cannot decode". */
class NotRasterError extends Error {}

function pipeline(source: Source, p: Preprocess, g: Geometry, nearest: boolean) {
  const kernel = nearest ? 'nearest' : 'linear';
  let img = source.sharp().resize(g.resizedWidth, g.resizedHeight, { fit: 'fill', kernel });
  if (p.mode === 'crop')
    img = img.extract({ left: g.left, top: g.top, width: g.inputWidth, height: g.inputHeight });
  return img;
}

/** The image's original size and its geometry under `p`, from its header only. */
export async function probeImage(
  file: string,
  p: Preprocess,
  options: LoadOptions = {},
): Promise<{ width: number; height: number; geometry: Geometry; decodeBytes: number }> {
  const bytes = await readImageFile(file);
  try {
    const source = await openSource(bytes, options.pixelLimit ?? DEFAULT_PIXEL_LIMIT);
    const { width, height } = source;
    return { width, height, geometry: geometry(p, width, height), decodeBytes: source.bytes };
  } catch (error) {
    throw error instanceof KensaError ? error : decodeError(file, error);
  }
}

export async function loadImage(
  file: string,
  p: Preprocess,
  options: LoadOptions = {},
): Promise<LoadedImage> {
  return decodeImage(await readImageFile(file), file, p, options);
}

/**
 * An image already inspected, opened again for a picture (an overlay, a thumbnail): any format kensa
 * decodes (BMP included), turned upright, through the same path as inspection. Its size was checked
 * when it was inspected, so only the largest pixel limit applies here.
 */
export async function openImage(
  input: string | Buffer,
): Promise<{ width: number; height: number; sharp: () => Sharp }> {
  const name = typeof input === 'string' ? input : 'the image';
  const bytes = typeof input === 'string' ? await readImageFile(input) : input;
  try {
    return await openSource(bytes, OPTIONS.pixelLimit.max);
  } catch (error) {
    throw decodeError(name, error);
  }
}

/** The image's original size, from its header only (bytes received by the service). */
export async function probeImageBytes(
  bytes: Buffer,
  name: string,
  options: LoadOptions = {},
): Promise<{ width: number; height: number }> {
  try {
    const { width, height } = await openSource(bytes, options.pixelLimit ?? DEFAULT_PIXEL_LIMIT);
    return { width, height };
  } catch (error) {
    throw decodeError(name, error);
  }
}

/** Decodes image bytes already in memory; `file` is what messages call them (a path or a request). */
export async function decodeImage(
  bytes: Buffer,
  file: string,
  p: Preprocess,
  options: LoadOptions = {},
): Promise<LoadedImage> {
  const pixelLimit = options.pixelLimit ?? DEFAULT_PIXEL_LIMIT;
  try {
    const source = await openSource(bytes, pixelLimit);
    const { width, height } = source;
    const g = geometry(p, width, height);
    const release = await takeDecodeBytes(source.bytes);
    let decoded;
    try {
      decoded = await pipeline(source, p, g, false)
        .removeAlpha()
        .toColourspace('srgb')
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true });
    } finally {
      release();
    }
    const { data, info } = decoded;
    const W = g.inputWidth;
    const H = g.inputHeight;
    if (info.width !== W || info.height !== H)
      throw new Error(`decoded to ${info.width}×${info.height}, expected ${W}×${H}`);
    const n = W * H;
    const rgb = new Uint8Array(n * 3);
    if (info.channels === 3) rgb.set(data);
    else for (let i = 0; i < n; i++) rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = data[i * info.channels];
    const tensor = new Float32Array(3 * n);
    for (let c = 0; c < 3; c++) {
      const m = IMAGENET_MEAN[c];
      const sd = IMAGENET_STD[c];
      const plane = c * n;
      for (let i = 0; i < n; i++) tensor[plane + i] = (rgb[i * 3 + c] / 255 - m) / sd;
    }
    return { tensor, rgb, width, height, geometry: g };
  } catch (error) {
    throw error instanceof KensaError ? error : decodeError(file, error);
  }
}

export interface LoadedMask {
  /** H×W at the processed size, 1 where the mask value is > 127. */
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
  const bytes = await readImageFile(file);
  try {
    const warnings: string[] = [];
    const source = await openSource(bytes, pixelLimit);
    const { width, height } = source;
    if (width !== imageWidth || height !== imageHeight) {
      warnings.push(
        `${file}: ` +
          tr(
            `the mask is ${width}×${height} but its image is ${imageWidth}×${imageHeight}; it was resized (nearest neighbour)`,
            `マスクは ${width}×${height} ですが画像は ${imageWidth}×${imageHeight} です。最近傍法で拡大縮小しました`,
          ),
      );
    }
    const g = geometry(p, imageWidth, imageHeight);
    const { data, info } = await pipeline(source, p, g, true)
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
        `${file}: ` +
          tr(
            `the mask is not binary (${odd} pixels neither 0 nor 255); values above 127 count as defect`,
            `マスクが 2 値ではありません（0 でも 255 でもない画素が ${odd} 個）。127 を超える値を欠陥とみなします`,
          ),
      );
    return { mask, warnings };
  } catch (error) {
    throw error instanceof KensaError ? error : decodeError(file, error);
  }
}
