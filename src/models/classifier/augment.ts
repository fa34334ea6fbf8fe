/**
 * Augmentation that suits inspection images, on the processed RGB pixels (H×W×3, 8-bit), seeded: flips,
 * 90° turns, small rotations and shifts (bilinear, the border mirrored), brightness and contrast, and a
 * light blur. Each kind can be switched off. A 90° turn of a non-square image swaps its sides, so turns are
 * used on square images only.
 */
export const AUGMENTATIONS = ['flip', 'rot90', 'rotate', 'shift', 'color', 'blur'] as const;
export type Augmentation = (typeof AUGMENTATIONS)[number];

/** Largest rotation (degrees), shift (share of the side), brightness and contrast change. */
const MAX_ANGLE = 10;
const MAX_SHIFT = 0.05;
const MAX_BRIGHTNESS = 0.1;
const MAX_CONTRAST = 0.15;

export interface Pixels {
  rgb: Uint8Array;
  width: number;
  height: number;
}

const mirror = (i: number, n: number) => {
  if (n === 1) return 0;
  const period = 2 * n - 2;
  let j = ((i % period) + period) % period;
  if (j >= n) j = period - j;
  return j;
};

/** out(x, y) = in(A · (x, y) + t), bilinear, mirrored at the border. */
function warp(p: Pixels, a: number, b: number, c: number, d: number, tx: number, ty: number): Uint8Array {
  const { rgb, width: W, height: H } = p;
  const out = new Uint8Array(rgb.length);
  const cx = (W - 1) / 2;
  const cy = (H - 1) / 2;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const sx = a * (x - cx) + b * (y - cy) + cx + tx;
      const sy = c * (x - cx) + d * (y - cy) + cy + ty;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      const xa = mirror(x0, W);
      const xb = mirror(x0 + 1, W);
      const ya = mirror(y0, H);
      const yb = mirror(y0 + 1, H);
      for (let ch = 0; ch < 3; ch++) {
        const v =
          (1 - fy) * ((1 - fx) * rgb[(ya * W + xa) * 3 + ch] + fx * rgb[(ya * W + xb) * 3 + ch]) +
          fy * ((1 - fx) * rgb[(yb * W + xa) * 3 + ch] + fx * rgb[(yb * W + xb) * 3 + ch]);
        out[(y * W + x) * 3 + ch] = Math.round(v);
      }
    }
  }
  return out;
}

/** One augmented copy of `p`, with the kinds in `enabled`, drawn from `random`. */
export function augment(p: Pixels, enabled: ReadonlySet<Augmentation>, random: () => number): Pixels {
  const { width: W, height: H } = p;
  let rgb = p.rgb;
  // flips and quarter turns: an exact permutation of pixels
  const flipX = enabled.has('flip') && random() < 0.5;
  const flipY = enabled.has('flip') && random() < 0.5;
  const turns = enabled.has('rot90') && W === H ? Math.floor(random() * 4) : 0;
  // a small rotation and shift, as one bilinear warp
  const angle = enabled.has('rotate') ? ((random() * 2 - 1) * MAX_ANGLE * Math.PI) / 180 : 0;
  const tx = enabled.has('shift') ? (random() * 2 - 1) * MAX_SHIFT * W : 0;
  const ty = enabled.has('shift') ? (random() * 2 - 1) * MAX_SHIFT * H : 0;
  if (flipX || flipY || turns || angle || tx || ty) {
    // compose: output → source coordinates (about the centre)
    let [a, b, c, d] = [Math.cos(angle), -Math.sin(angle), Math.sin(angle), Math.cos(angle)];
    for (let k = 0; k < turns; k++) [a, b, c, d] = [b, -a, d, -c];
    if (flipX) [a, c] = [-a, -c];
    if (flipY) [b, d] = [-b, -d];
    rgb = warp({ rgb, width: W, height: H }, a, b, c, d, tx, ty);
  }
  if (enabled.has('color')) {
    const brightness = (random() * 2 - 1) * MAX_BRIGHTNESS * 255;
    const contrast = 1 + (random() * 2 - 1) * MAX_CONTRAST;
    const out = new Uint8Array(rgb.length);
    for (let i = 0; i < rgb.length; i++)
      out[i] = Math.max(0, Math.min(255, Math.round((rgb[i] - 128) * contrast + 128 + brightness)));
    rgb = out;
  }
  if (enabled.has('blur') && random() < 0.3) {
    // a light [1 2 1]/4 blur along both axes (mirrored border)
    const tmp = new Float32Array(rgb.length);
    const out = new Uint8Array(rgb.length);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        for (let ch = 0; ch < 3; ch++)
          tmp[(y * W + x) * 3 + ch] =
            (rgb[(y * W + mirror(x - 1, W)) * 3 + ch] +
              2 * rgb[(y * W + x) * 3 + ch] +
              rgb[(y * W + mirror(x + 1, W)) * 3 + ch]) /
            4;
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        for (let ch = 0; ch < 3; ch++)
          out[(y * W + x) * 3 + ch] = Math.round(
            (tmp[(mirror(y - 1, H) * W + x) * 3 + ch] +
              2 * tmp[(y * W + x) * 3 + ch] +
              tmp[(mirror(y + 1, H) * W + x) * 3 + ch]) /
              4,
          );
    rgb = out;
  }
  return { rgb, width: W, height: H };
}
