/**
 * PaDiM's patch embedding: the three backbone outputs concatenated per position of the stride-4 grid,
 * the coarser maps repeated over the finer grid (as the public PaDiM code's unfold/fold does), keeping a
 * fixed, seeded subset of channels. This file holds the layout and the channel choice; the embedding
 * itself is computed inside the ONNX graphs (graphs.ts).
 */
import { mulberry32 } from '../../util/random.js';

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
