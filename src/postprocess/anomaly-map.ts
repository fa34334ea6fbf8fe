/**
 * From patch scores to the anomaly map, the same for every method: bilinear upsampling of the patch grid
 * to the input size (as F.interpolate(mode='bilinear', align_corners=False)) and Gaussian smoothing (as
 * scipy.ndimage.gaussian_filter(sigma, truncate=4)); the image score is the map's maximum.
 *
 * Upsampling and smoothing are both linear along each axis, so for an h×w grid D the map is
 * A_rows · D · A_colsᵀ, where each A is the product of the Gaussian and the bilinear weights of one axis.
 * Each row of A has only a few non-zero entries (the Gaussian's reach in grid cells), so A is kept as a
 * band: the map of a 3872×3200 image costs ~100 M multiply-adds instead of the ~800 M of smoothing the
 * upsampled image. Rows and columns have their own operators: nothing assumes a square.
 *
 * The step-by-step functions (upsampleBilinear, gaussianSmooth) are the reference the tests hold the
 * band form to.
 */

import { float32Tensor, int64Tensor, type NodeSpec, type TensorProto } from '../onnx/graph.js';

/**
 * How the smoothing extends the map past its edges: 'reflect' is scipy's default (d c b a | a b c d),
 * used by the public PaDiM code; 'mirror' (d c b | a b c d) is torch's reflect padding, used by anomalib's
 * GaussianBlur2d and so by PatchCore.
 */
export type Padding = 'reflect' | 'mirror';
export const PADDINGS: readonly Padding[] = ['reflect', 'mirror'];

/** The map step's settings, stored in every model. */
export interface MapSettings {
  /** Gaussian σ in input pixels. */
  sigma: number;
  padding: Padding;
}

/** Bilinear resize of an h×w map to H×W with half-pixel centres (PyTorch align_corners=False). */
export function upsampleBilinear(
  src: Float32Array,
  h: number,
  w: number,
  H: number,
  W: number,
  out = new Float32Array(H * W),
): Float32Array {
  const cols = Array.from({ length: W }, (_, x) => bilinearTap(x, w, W));
  for (let y = 0; y < H; y++) {
    const [y0, y1, ly] = bilinearTap(y, h, H);
    for (let x = 0; x < W; x++) {
      const [x0, x1, lx] = cols[x];
      const top = src[y0 * w + x0] * (1 - lx) + src[y0 * w + x1] * lx;
      const bottom = src[y1 * w + x0] * (1 - lx) + src[y1 * w + x1] * lx;
      out[y * W + x] = top * (1 - ly) + bottom * ly;
    }
  }
  return out;
}

/** The two source cells and the weight of the second for output index i (n cells → N outputs). */
function bilinearTap(i: number, n: number, N: number): [number, number, number] {
  const f = Math.max(0, (i + 0.5) * (n / N) - 0.5);
  const i0 = Math.min(Math.floor(f), n - 1);
  const i1 = Math.min(i0 + 1, n - 1);
  return [i0, i1, f - i0];
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

/** The index that position i (any integer) reads from in an axis of n samples, for a padding mode. */
export function padIndex(i: number, n: number, padding: Padding = 'reflect'): number {
  if (padding === 'mirror') {
    if (n === 1) return 0;
    const period = 2 * n - 2;
    let j = ((i % period) + period) % period;
    if (j >= n) j = period - j;
    return j;
  }
  const period = 2 * n;
  let j = ((i % period) + period) % period;
  if (j >= n) j = period - 1 - j;
  return j;
}

/** Separable Gaussian smoothing of an H×W map in place (first along y, as scipy does, then along x). */
export function gaussianSmooth(
  map: Float32Array,
  H: number,
  W: number,
  sigma: number,
  padding: Padding = 'reflect',
): Float32Array {
  const k = gaussianKernel(sigma);
  const r = (k.length - 1) / 2;
  const tmp = new Float64Array(H * W);
  for (let y = 0; y < H; y++) {
    for (let t = 0; t < k.length; t++) {
      const src = padIndex(y + t - r, H, padding) * W;
      for (let x = 0; x < W; x++) tmp[y * W + x] += k[t] * map[src + x];
    }
  }
  const padded = new Float64Array(W + 2 * r);
  for (let y = 0; y < H; y++) {
    for (let i = 0; i < padded.length; i++) padded[i] = tmp[y * W + padIndex(i - r, W, padding)];
    for (let x = 0; x < W; x++) {
      let s = 0;
      for (let t = 0; t < k.length; t++) s += k[t] * padded[x + t];
      map[y * W + x] = s;
    }
  }
  return map;
}

export function maxOf(a: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < a.length; i++) if (a[i] > m) m = a[i];
  return m;
}

/** Step by step: grid → upsampled → smoothed map, and its maximum. The reference for the band form. */
export function anomalyMap(
  dist: Float32Array,
  h: number,
  w: number,
  H: number,
  W: number,
  settings: MapSettings,
): { map: Float32Array; score: number } {
  const map = gaussianSmooth(upsampleBilinear(dist, h, w, H, W), H, W, settings.sigma, settings.padding);
  return { map, score: maxOf(map) };
}

/**
 * One axis of the map step as a band matrix: output i = Σ_j weights[i·width + j] · input[start[i] + j].
 * `n` grid cells → `N` map pixels.
 */
export interface AxisOperator {
  n: number;
  N: number;
  width: number;
  start: Int32Array;
  weights: Float64Array;
}

export function axisOperator(n: number, N: number, settings: MapSettings): AxisOperator {
  const k = gaussianKernel(settings.sigma);
  const r = (k.length - 1) / 2;
  const taps = Array.from({ length: N }, (_, i) => bilinearTap(i, n, N));
  const dense = new Float64Array(n);
  const rows: { start: number; values: Float64Array }[] = [];
  let width = 1;
  for (let i = 0; i < N; i++) {
    dense.fill(0);
    let lo = n;
    let hi = -1;
    for (let t = 0; t < k.length; t++) {
      const [i0, i1, l] = taps[padIndex(i + t - r, N, settings.padding)];
      dense[i0] += k[t] * (1 - l);
      dense[i1] += k[t] * l;
      lo = Math.min(lo, i0);
      hi = Math.max(hi, i1);
    }
    rows.push({ start: lo, values: dense.slice(lo, hi + 1) });
    width = Math.max(width, hi - lo + 1);
  }
  const start = new Int32Array(N);
  const weights = new Float64Array(N * width);
  rows.forEach((row, i) => {
    // keep every band inside the axis: a band shorter than `width` near the end starts earlier
    const s = Math.min(row.start, n - width);
    start[i] = s;
    weights.set(row.values, i * width + (row.start - s));
  });
  return { n, N, width, start, weights };
}

/**
 * The map step for one grid size: grid (h×w) → map (H×W) and its maximum. The operators are built once
 * per geometry and reused for every image of that size.
 */
export class MapStep {
  private readonly rows: AxisOperator;
  private readonly cols: AxisOperator;
  private readonly tmp: Float64Array;

  constructor(
    readonly h: number,
    readonly w: number,
    readonly H: number,
    readonly W: number,
    settings: MapSettings,
  ) {
    this.rows = axisOperator(h, H, settings);
    this.cols = w === h && W === H ? this.rows : axisOperator(w, W, settings);
    this.tmp = new Float64Array(h * W);
  }

  /** The map of one grid (h·w values from `offset` of `grid`), written into `out`; returns its maximum. */
  apply(grid: Float32Array, out: Float32Array = new Float32Array(this.H * this.W), offset = 0): number {
    const { h, w, H, W, rows, cols, tmp } = this;
    // columns first: tmp (h×W) = D · A_colsᵀ
    const cw = cols.width;
    for (let y = 0; y < h; y++) {
      const g = offset + y * w;
      for (let x = 0; x < W; x++) {
        const s0 = g + cols.start[x];
        const o = x * cw;
        let s = 0;
        for (let j = 0; j < cw; j++) s += cols.weights[o + j] * grid[s0 + j];
        tmp[y * W + x] = s;
      }
    }
    // then rows: out (H×W) = A_rows · tmp, as weighted sums of whole rows of tmp
    const rw = rows.width;
    const acc = new Float64Array(W);
    let max = -Infinity;
    for (let Y = 0; Y < H; Y++) {
      acc.fill(0);
      const o = Y * rw;
      for (let j = 0; j < rw; j++) {
        const wgt = rows.weights[o + j];
        if (wgt === 0) continue;
        const src = (rows.start[Y] + j) * W;
        for (let x = 0; x < W; x++) acc[x] += wgt * tmp[src + x];
      }
      const row = Y * W;
      for (let x = 0; x < W; x++) {
        const v = acc[x];
        out[row + x] = v;
        if (v > max) max = v;
      }
    }
    return max;
  }
}

/**
 * The map step as ONNX nodes, for kensa export: `grid` [N, h, w] → `map` [N, H, W], where H and W are
 * those of `size.like` (an NCHW tensor: the network input) or the values of `size.hw` (int64 [2]: a
 * tiled image's size, for the map of its stitched grid). Bilinear upsampling is Resize (linear, half-pixel
 * centres: F.interpolate(align_corners=False)); the Gaussian is one Conv per axis on a map padded as
 * `settings.padding` says (reflect: d c b a | a b c d, from reversed slices; mirror: d c b | a b c d).
 * The same arithmetic as MapStep, with H and W free: one graph serves every input size. Needs H and W
 * above the Gaussian's radius.
 */
export function mapStepNodes(
  settings: MapSettings,
  grid: string,
  size: { like: string } | { hw: string },
): { nodes: NodeSpec[]; initializers: TensorProto[]; map: string; radius: number } {
  const k = gaussianKernel(settings.sigma);
  const r = (k.length - 1) / 2;
  const kernel = Float32Array.from(k);
  // the padding as a gather of computed indices, padIndex's rule in nodes: i in [−r, n + r) reads
  // j = i mod P (P = 2n for reflect, 2n − 2 for mirror), folded back when j ≥ n. Any n works — a side
  // shorter than the kernel's radius (a 16-px strip) is extended by further reflections, as padIndex does
  const mirror = settings.padding === 'mirror';
  const pad = (input: string, axis: number, output: string): NodeSpec[] => {
    const v = (name: string) => `${output}_${name}`;
    return [
      { op: 'Shape', inputs: [input], output: v('shape') },
      { op: 'Gather', inputs: [v('shape'), `axis${axis}_scalar`], output: v('n'), attrs: { axis: 0 } },
      { op: 'Add', inputs: [v('n'), 'radius'], output: v('stop') },
      { op: 'Range', inputs: ['minus_radius', v('stop'), 'one_scalar'], output: v('i') },
      { op: 'Mul', inputs: [v('n'), 'two_scalar'], output: v('2n') },
      ...(mirror
        ? [
            { op: 'Sub', inputs: [v('2n'), 'two_scalar'], output: v('p0') },
            { op: 'Max', inputs: [v('p0'), 'one_scalar'], output: v('period') },
          ]
        : [{ op: 'Identity', inputs: [v('2n')], output: v('period') }]),
      { op: 'Mod', inputs: [v('i'), v('period')], output: v('j'), attrs: { fmod: 0 } },
      { op: 'Less', inputs: [v('j'), v('n')], output: v('inside') },
      { op: 'Sub', inputs: [v('period'), v('j')], output: v('back0') },
      ...(mirror
        ? [{ op: 'Identity', inputs: [v('back0')], output: v('back') }]
        : [{ op: 'Sub', inputs: [v('back0'), 'one_scalar'], output: v('back') }]),
      { op: 'Where', inputs: [v('inside'), v('j'), v('back')], output: v('index') },
      { op: 'Gather', inputs: [input, v('index')], output, attrs: { axis } },
    ];
  };
  const nodes: NodeSpec[] = [
    // the map's size: of the network input (NCHW), or given as [H, W]
    ...('like' in size
      ? [
          { op: 'Shape', inputs: [size.like], output: 'like_shape' },
          { op: 'Slice', inputs: ['like_shape', 'two', 'four'], output: 'hw' },
        ]
      : [{ op: 'Identity', inputs: [size.hw], output: 'hw' }]),
    { op: 'Unsqueeze', inputs: [grid, 'one'], output: 'g4' },
    { op: 'Shape', inputs: ['g4'], output: 'g4_shape' },
    { op: 'Slice', inputs: ['g4_shape', 'zero', 'two'], output: 'nc' },
    { op: 'Concat', inputs: ['nc', 'hw'], output: 'sizes', attrs: { axis: 0 } },
    {
      op: 'Resize',
      inputs: ['g4', '', '', 'sizes'],
      output: 'up',
      attrs: { mode: 'linear', coordinate_transformation_mode: 'half_pixel' },
    },
    ...pad('up', 2, 'pad_y'),
    { op: 'Conv', inputs: ['pad_y', 'kernel_y'], output: 'smooth_y' },
    ...pad('smooth_y', 3, 'pad_x'),
    { op: 'Conv', inputs: ['pad_x', 'kernel_x'], output: 'smooth' },
    { op: 'Squeeze', inputs: ['smooth', 'one'], output: 'map' },
  ];
  const initializers = [
    int64Tensor('zero', [0]),
    int64Tensor('one', [1]),
    int64Tensor('two', [2]),
    // the network input's height and width are read only where the size is like an input's
    ...('like' in size ? [int64Tensor('four', [4])] : []),
    int64Tensor('axis2_scalar', [], [2]),
    int64Tensor('axis3_scalar', [], [3]),
    int64Tensor('radius', [], [r]),
    int64Tensor('minus_radius', [], [-r]),
    int64Tensor('one_scalar', [], [1]),
    int64Tensor('two_scalar', [], [2]),
    float32Tensor('kernel_y', [1, 1, k.length, 1], kernel),
    float32Tensor('kernel_x', [1, 1, 1, k.length], kernel),
  ];
  return { nodes, initializers, map: 'map', radius: r };
}
