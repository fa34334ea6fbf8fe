/**
 * PaDiM's patch embedding: the three backbone outputs concatenated per position of the stride-4 grid,
 * the coarser maps repeated over the finer grid (as the public PaDiM code's unfold/fold does), keeping a
 * fixed subset of channels. Written position-major, [P, K, d], ready for batched matrix products.
 */
import type { FeatureMap } from '../../backbone/backbone.js';
import { KensaError } from '../../util/errors.js';

export interface EmbeddingLayout {
  /** Channels of the three maps. */
  channels: [number, number, number];
  /** Kept channel indices into the concatenation (ascending). */
  index: Int32Array;
  /** The stride-4 grid. */
  height: number;
  width: number;
}

/** Seeded choice of d of C channels (sorted ascending), Fisher-Yates on a Mulberry32 stream. */
export function chooseChannels(total: number, d: number, seed: number): Int32Array {
  if (d >= total) return Int32Array.from({ length: total }, (_, i) => i);
  const pool = Int32Array.from({ length: total }, (_, i) => i);
  const rand = mulberry32(seed);
  for (let i = 0; i < d; i++) {
    const j = i + Math.floor(rand() * (total - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, d).sort();
}

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Writes image `b` of a backbone batch into slot `k` of a [P, K, d] buffer, minus `shift` ([P, d], or
 * none). Returns nothing; `out` must hold P*K*d values.
 */
export function embedInto(
  maps: readonly [FeatureMap, FeatureMap, FeatureMap],
  b: number,
  layout: EmbeddingLayout,
  out: Float32Array,
  k: number,
  K: number,
  shift?: Float32Array,
): void {
  const { index, height: H, width: W } = layout;
  const d = index.length;
  const [m1, m2, m3] = maps;
  const [c1, c2] = [m1.dims[1], m2.dims[1]];
  if (m1.dims[2] !== H || m1.dims[3] !== W) {
    throw new KensaError(
      'E_SHAPE',
      `features of ${m1.dims[2]}×${m1.dims[3]} do not match the model's ${H}×${W} grid`,
    );
  }
  // For each kept channel: which map, which channel, and the map's width/plane offset.
  for (let j = 0; j < d; j++) {
    const c = index[j];
    let map: FeatureMap;
    let ch: number;
    let s: number;
    if (c < c1) [map, ch, s] = [m1, c, 0];
    else if (c < c1 + c2) [map, ch, s] = [m2, c - c1, 1];
    else [map, ch, s] = [m3, c - c1 - c2, 2];
    const [, C, h, w] = map.dims;
    const plane = (b * C + ch) * h * w;
    const data = map.data;
    for (let y = 0; y < H; y++) {
      const row = plane + (y >> s) * w;
      for (let x = 0; x < W; x++) {
        const p = y * W + x;
        const at = (p * K + k) * d + j;
        const v = data[row + (x >> s)];
        out[at] = shift ? v - shift[p * d + j] : v;
      }
    }
  }
}
