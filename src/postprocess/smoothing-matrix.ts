/**
 * Bilinear upsampling (PyTorch align_corners=False) followed by Gaussian smoothing (scipy 'reflect',
 * truncate 4) is linear along each axis, so both collapse into one S×h matrix A: map = A · D · Aᵀ for a
 * square h×h distance grid D. That lets the whole step run as two matrix products inside the scoring
 * graph. `anomaly-map.ts` keeps the step-by-step version it is tested against.
 */
import { gaussianKernel, reflect } from './anomaly-map.js';

/** A (S×h, row-major, float32) such that A·D·Aᵀ = smooth(upsample(D)). */
export function upsampleSmoothMatrix(h: number, S: number, sigma: number): Float32Array {
  // U: S×h bilinear weights
  const U = new Float64Array(S * h);
  const scale = h / S;
  for (let y = 0; y < S; y++) {
    const f = Math.max(0, (y + 0.5) * scale - 0.5);
    const y0 = Math.floor(f);
    const y1 = Math.min(y0 + 1, h - 1);
    const l = f - y0;
    U[y * h + y0] += 1 - l;
    U[y * h + y1] += l;
  }
  const k = gaussianKernel(sigma);
  const r = (k.length - 1) / 2;
  const A = new Float32Array(S * h);
  const row = new Float64Array(h);
  for (let i = 0; i < S; i++) {
    row.fill(0);
    for (let t = -r; t <= r; t++) {
      const src = reflect(i + t, S) * h;
      const w = k[t + r];
      for (let c = 0; c < h; c++) row[c] += w * U[src + c];
    }
    A.set(row, i * h);
  }
  return A;
}
