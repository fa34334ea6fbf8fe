/**
 * Preprocessing geometry: how an image of any size becomes the square network input, and how points of
 * that square map back to the original image (for defect boxes in the user's own pixel coordinates).
 *
 *   { mode: 'resize', size }           the whole image squeezed to size×size (default; nothing cut off)
 *   { mode: 'crop', resize, crop }     shorter side to `resize`, then the centre crop×crop (PaDiM paper)
 */
import { assertInteger, KensaError } from '../util/errors.js';

/** ImageNet normalisation, the preprocessing every supported backbone was trained with. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

export type Preprocess = { mode: 'resize'; size: number } | { mode: 'crop'; resize: number; crop: number };

export const DEFAULT_SIZE = 224;

export function inputSize(p: Preprocess): number {
  return p.mode === 'resize' ? p.size : p.crop;
}

export function validatePreprocess(p: Preprocess): Preprocess {
  if (p.mode === 'resize') {
    assertInteger('size', p.size, 32, 4096);
    if (p.size % 16)
      throw new KensaError('E_ARGUMENT', `Expected a multiple of 16 for size but received ${p.size}`);
  } else {
    assertInteger('resize', p.resize, 32, 8192);
    assertInteger('crop', p.crop, 32, 4096);
    if (p.crop % 16)
      throw new KensaError('E_ARGUMENT', `Expected a multiple of 16 for crop but received ${p.crop}`);
    if (p.crop > p.resize)
      throw new KensaError('E_ARGUMENT', `crop (${p.crop}) cannot be larger than resize (${p.resize})`);
  }
  return p;
}

/** Where the square input lies in the original image: scale factors and offset (in original pixels). */
export interface Geometry {
  /** Size of the resized image before cropping. */
  resizedWidth: number;
  resizedHeight: number;
  /** Crop offset in the resized image. */
  left: number;
  top: number;
  /** Original pixels per resized pixel. */
  scaleX: number;
  scaleY: number;
}

export function geometry(p: Preprocess, width: number, height: number): Geometry {
  if (p.mode === 'resize') {
    return {
      resizedWidth: p.size,
      resizedHeight: p.size,
      left: 0,
      top: 0,
      scaleX: width / p.size,
      scaleY: height / p.size,
    };
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
    scaleX: width / rw,
    scaleY: height / rh,
  };
}

/** A box in input-square pixels → the same box in original-image pixels. */
export function toOriginal(
  g: Geometry,
  x: number,
  y: number,
  w: number,
  h: number,
): [number, number, number, number] {
  return [(x + g.left) * g.scaleX, (y + g.top) * g.scaleY, w * g.scaleX, h * g.scaleY];
}
