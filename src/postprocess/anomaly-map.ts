/**
 * From patch distances to the anomaly map: bilinear upsampling to the input size (as
 * F.interpolate(mode='bilinear', align_corners=False)) and Gaussian smoothing (as
 * scipy.ndimage.gaussian_filter(sigma=4, truncate=4, mode='reflect')). The image score is the map's maximum.
 */

/** Bilinear resize of an h×w map to H×W with half-pixel centres (PyTorch align_corners=False). */
export function upsampleBilinear(
  src: Float32Array,
  h: number,
  w: number,
  H: number,
  W: number,
  out = new Float32Array(H * W),
): Float32Array {
  const sy = h / H;
  const sx = w / W;
  const x0s = new Int32Array(W);
  const x1s = new Int32Array(W);
  const fxs = new Float32Array(W);
  for (let x = 0; x < W; x++) {
    const fx = Math.max(0, (x + 0.5) * sx - 0.5);
    x0s[x] = Math.floor(fx);
    x1s[x] = Math.min(x0s[x] + 1, w - 1);
    fxs[x] = fx - x0s[x];
  }
  for (let y = 0; y < H; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, h - 1);
    const ly = fy - y0;
    const r0 = y0 * w;
    const r1 = y1 * w;
    for (let x = 0; x < W; x++) {
      const lx = fxs[x];
      const top = src[r0 + x0s[x]] * (1 - lx) + src[r0 + x1s[x]] * lx;
      const bottom = src[r1 + x0s[x]] * (1 - lx) + src[r1 + x1s[x]] * lx;
      out[y * W + x] = top * (1 - ly) + bottom * ly;
    }
  }
  return out;
}

/** The normalised 1-D Gaussian kernel scipy uses: radius = int(truncate·σ + 0.5). */
export function gaussianKernel(sigma: number, truncate = 4): Float64Array {
  const radius = Math.floor(truncate * sigma + 0.5);
  const k = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) sum += k[i + radius] = Math.exp((-0.5 * i * i) / (sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

/** scipy 'reflect' (half-sample symmetric) index for any i. */
export function reflect(i: number, n: number): number {
  const period = 2 * n;
  let j = ((i % period) + period) % period;
  if (j >= n) j = period - 1 - j;
  return j;
}

/** Separable Gaussian smoothing of an H×W map in place (first along y, as scipy does, then along x). */
export function gaussianSmooth(map: Float32Array, H: number, W: number, sigma: number): Float32Array {
  const k = gaussianKernel(sigma);
  const r = (k.length - 1) / 2;
  const tmp = new Float64Array(H * W);
  // along y: each output row is a weighted sum of whole input rows (contiguous, cache-friendly)
  for (let y = 0; y < H; y++) {
    const out = y * W;
    for (let t = 0; t < k.length; t++) {
      const src = reflect(y + t - r, H) * W;
      const w = k[t];
      for (let x = 0; x < W; x++) tmp[out + x] += w * map[src + x];
    }
  }
  // along x: pad each row by reflection once, then a plain sliding dot product
  const padded = new Float64Array(W + 2 * r);
  for (let y = 0; y < H; y++) {
    const row = y * W;
    for (let i = 0; i < padded.length; i++) padded[i] = tmp[row + reflect(i - r, W)];
    for (let x = 0; x < W; x++) {
      let s = 0;
      for (let t = 0; t < k.length; t++) s += k[t] * padded[x + t];
      map[row + x] = s;
    }
  }
  return map;
}

function maxOf(a: Float32Array): number {
  let m = -Infinity;
  for (let i = 0; i < a.length; i++) if (a[i] > m) m = a[i];
  return m;
}

/** Distances on the patch grid → smoothed S×S anomaly map and the image score (its maximum). */
export function anomalyMap(
  dist: Float32Array,
  h: number,
  w: number,
  size: number,
  sigma = 4,
): { map: Float32Array; score: number } {
  const map = gaussianSmooth(upsampleBilinear(dist, h, w, size, size), size, size, sigma);
  return { map, score: maxOf(map) };
}
