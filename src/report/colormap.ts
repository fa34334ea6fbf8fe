/** The "jet" colour map (as matplotlib's), used for heat maps and their colour bar. */

function channel(x: number, points: [number, number][]): number {
  for (let i = 1; i < points.length; i++) {
    if (x <= points[i][0]) {
      const [x0, y0] = points[i - 1];
      const [x1, y1] = points[i];
      return y0 + ((x - x0) / (x1 - x0)) * (y1 - y0);
    }
  }
  return points[points.length - 1][1];
}

const R: [number, number][] = [
  [0, 0],
  [0.35, 0],
  [0.66, 1],
  [0.89, 1],
  [1, 0.5],
];
const G: [number, number][] = [
  [0, 0],
  [0.125, 0],
  [0.375, 1],
  [0.64, 1],
  [0.91, 0],
  [1, 0],
];
const B: [number, number][] = [
  [0, 0.5],
  [0.11, 1],
  [0.34, 1],
  [0.65, 0],
  [1, 0],
];

const LUT = new Uint8Array(256 * 3);
for (let i = 0; i < 256; i++) {
  const x = i / 255;
  LUT[i * 3] = Math.round(255 * channel(x, R));
  LUT[i * 3 + 1] = Math.round(255 * channel(x, G));
  LUT[i * 3 + 2] = Math.round(255 * channel(x, B));
}

/** RGB of jet at t ∈ [0, 1] (clamped). */
/** The table entry of t in [0, 1] (clamped). */
const entry = (t: number) => Math.max(0, Math.min(255, Math.round(t * 255)));

export function jet(t: number): [number, number, number] {
  const i = entry(t);
  return [LUT[i * 3], LUT[i * 3 + 1], LUT[i * 3 + 2]];
}

/** jet(t) written into out[at..at+2] (no array per pixel: maps of millions of pixels). */
export function jetInto(t: number, out: Uint8Array, at: number): void {
  const i = entry(t);
  out[at] = LUT[i * 3];
  out[at + 1] = LUT[i * 3 + 1];
  out[at + 2] = LUT[i * 3 + 2];
}
