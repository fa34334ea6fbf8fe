/**
 * Preprocessing geometry: how an image of any size becomes what the network sees, and how its points map
 * back to the original image (for defect boxes in the user's own pixel coordinates). Height and width
 * travel separately everywhere: nothing assumes a square.
 *
 *   { mode: 'fit', size }              aspect ratio kept, scaled to about size×size pixels in area (the
 *                                      default for new models); sides rounded to multiples of 16
 *   { mode: 'scale', scale }           scale × the native resolution (1 = native), sides rounded to 16
 *   { mode: 'resize', size }           the whole image squeezed to size×size
 *   { mode: 'crop', resize, crop }     shorter side to `resize`, then the centre crop×crop (PaDiM paper)
 *
 * Any mode may add `tile: { size, overlap }`: the processed image is cut into size×size tiles that
 * overlap by at least `overlap` pixels (tiles.ts), each a network input of its own.
 */
import { checkOption } from '../options.js';
import { assertInteger, invalidParameter, KensaError } from '../util/errors.js';
import { tr } from '../i18n.js';

/** ImageNet normalisation, the preprocessing every supported backbone was trained with. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

export interface TileSettings {
  /** Tile side in processed pixels (a multiple of 16). */
  size: number;
  /** Least overlap of neighbouring tiles in processed pixels (a multiple of 16). */
  overlap: number;
}

export type Preprocess = (
  | { mode: 'fit'; size: number }
  | { mode: 'scale'; scale: number }
  | { mode: 'resize'; size: number }
  | { mode: 'crop'; resize: number; crop: number }
) & { tile?: TileSettings };

export const DEFAULT_SIZE = 224;
/** Every processed side is a multiple of this (the backbone's coarsest stride). */
export const SIDE_MULTIPLE = 16;
/** Default tile overlap: larger than the largest defect the users named (70 px), a multiple of 16. */
export const DEFAULT_OVERLAP = 96;
export const MAX_SIDE = 16384;

const round16 = (v: number) => Math.max(SIDE_MULTIPLE, Math.round(v / SIDE_MULTIPLE) * SIDE_MULTIPLE);

/** The one size every processed image has, when the mode fixes it (square resize, crop); else undefined. */
export function fixedInputSize(p: Preprocess): { width: number; height: number } | undefined {
  if (p.mode === 'resize') return { width: p.size, height: p.size };
  if (p.mode === 'crop') return { width: p.crop, height: p.crop };
  return undefined;
}

/** A side from the option table (src/options.ts), and a multiple of 16. */
function multipleOf16(name: 'size' | 'crop' | 'tile', v: number): void {
  checkOption(name, v);
  if (v % SIDE_MULTIPLE) throw invalidParameter(name, `a multiple of ${SIDE_MULTIPLE}`, v);
}

/** Checks every field; returns the preprocessing unchanged. Errors name the option (usage errors). */
export function validatePreprocess(p: Preprocess): Preprocess {
  if (p.mode === 'resize' || p.mode === 'fit') {
    multipleOf16('size', p.size);
  } else if (p.mode === 'scale') {
    checkOption('scale', p.scale ?? NaN);
  } else if (p.mode === 'crop') {
    checkOption('resize', p.resize ?? NaN);
    multipleOf16('crop', p.crop);
    if (p.crop > p.resize)
      throw new KensaError(
        'E_ARGUMENT',
        `Expected crop (${p.crop}) no larger than resize (${p.resize}): the centre crop is taken from the resized image`,
      );
  } else {
    throw invalidParameter('preprocess mode', 'fit, scale, resize or crop', (p as { mode: unknown }).mode);
  }
  if (p.tile) {
    multipleOf16('tile', p.tile.size);
    assertInteger('overlap', p.tile.overlap, 0, p.tile.size - SIDE_MULTIPLE);
    if (p.tile.overlap % SIDE_MULTIPLE)
      throw invalidParameter(
        'overlap',
        `a multiple of ${SIDE_MULTIPLE} below the tile size (${p.tile.size})`,
        p.tile.overlap,
      );
    const fixed = fixedInputSize(p);
    if (fixed && fixed.width < p.tile.size)
      throw new KensaError(
        'E_ARGUMENT',
        `the tile (${p.tile.size}) is larger than the ${fixed.width}×${fixed.height} input; choose a smaller --tile or a larger --size`,
      );
  }
  return p;
}

/** Where the processed image lies in the original: scale factors and offset (in original pixels). */
export interface Geometry {
  /** Size of the resized image before cropping. */
  resizedWidth: number;
  resizedHeight: number;
  /** Crop offset in the resized image. */
  left: number;
  top: number;
  /** The processed image (what is decoded and cut into network inputs): multiples of 16. */
  inputWidth: number;
  inputHeight: number;
  /** Original pixels per resized pixel. */
  scaleX: number;
  scaleY: number;
}

/** The geometry of an image of width×height (oriented) under a preprocessing. */
export function geometry(p: Preprocess, width: number, height: number): Geometry {
  const plain = (w: number, h: number): Geometry => ({
    resizedWidth: w,
    resizedHeight: h,
    left: 0,
    top: 0,
    inputWidth: w,
    inputHeight: h,
    scaleX: width / w,
    scaleY: height / h,
  });
  if (p.mode === 'resize') return plain(p.size, p.size);
  if (p.mode === 'fit') {
    const f = p.size / Math.sqrt(width * height);
    return plain(Math.min(MAX_SIDE, round16(width * f)), Math.min(MAX_SIDE, round16(height * f)));
  }
  if (p.mode === 'scale') {
    const w = round16(width * p.scale);
    const h = round16(height * p.scale);
    if (w > MAX_SIDE || h > MAX_SIDE)
      throw new KensaError(
        'E_ARGUMENT',
        `at --scale ${p.scale} the image would be ${w}×${h} pixels (at most ${MAX_SIDE} a side); lower --scale`,
      );
    return plain(w, h);
  }
  // torchvision Resize(int): the shorter side becomes `resize`, the longer one int(resize * long / short)
  const [rw, rh] =
    width <= height
      ? [p.resize, Math.floor((p.resize * height) / width)]
      : [Math.floor((p.resize * width) / height), p.resize];
  return {
    resizedWidth: rw,
    resizedHeight: rh,
    left: Math.round((rw - p.crop) / 2),
    top: Math.round((rh - p.crop) / 2),
    inputWidth: p.crop,
    inputHeight: p.crop,
    scaleX: width / rw,
    scaleY: height / rh,
  };
}

/** A box in processed pixels → the same box in original-image pixels. */
export function toOriginal(
  g: Geometry,
  x: number,
  y: number,
  w: number,
  h: number,
): [number, number, number, number] {
  return [(x + g.left) * g.scaleX, (y + g.top) * g.scaleY, w * g.scaleX, h * g.scaleY];
}

/** The original-image rectangle the processed image shows: [x, y, width, height]. */
export function shownRegion(g: Geometry): [number, number, number, number] {
  return toOriginal(g, 0, 0, g.inputWidth, g.inputHeight);
}

/** A short description for messages and the model summary, e.g. "aspect kept, ~224² px, tiles 512 (overlap 96)". */
export function describePreprocess(p: Preprocess): string {
  const base =
    p.mode === 'fit'
      ? tr(`aspect ratio kept, about ${p.size}×${p.size} pixels`, `縦横比を保って約 ${p.size}×${p.size} 画素`)
      : p.mode === 'scale'
        ? tr(`${p.scale} × native resolution`, `元の解像度の ${p.scale} 倍`)
        : p.mode === 'resize'
          ? tr(`${p.size}×${p.size} square`, `${p.size}×${p.size} の正方形`)
          : tr(
              `shorter side ${p.resize}, centre crop ${p.crop}×${p.crop}`,
              `短辺 ${p.resize}、中央を ${p.crop}×${p.crop} で切り出し`,
            );
  if (!p.tile) return base;
  const { size, overlap } = p.tile;
  return tr(
    `${base}, tiles of ${size}×${size} (overlap ≥ ${overlap})`,
    `${base}、${size}×${size} のタイル（重なり ${overlap} 以上）`,
  );
}
