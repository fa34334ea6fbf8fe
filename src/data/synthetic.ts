/**
 * A small synthetic inspection data set in the MVTec AD layout, for the demo and the end-to-end tests:
 * textured surfaces (brushed-metal stripes plus grain) with small square "dust" and thin "scratch"
 * defects, and their masks. Seeded: the same seed gives the same files.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { mulberry32 } from '../util/random.js';

export interface SyntheticOptions {
  size?: number;
  train?: number;
  testGood?: number;
  testPerDefect?: number;
  seed?: number;
}

function surface(rand: () => number, size: number): Float32Array {
  const img = new Float32Array(size * size * 3);
  const base = [120 + 40 * rand(), 120 + 40 * rand(), 125 + 40 * rand()];
  const waves = Array.from({ length: 3 }, () => ({
    f: 0.02 + 0.1 * rand(),
    phase: 6.28 * rand(),
    a: 4 + 6 * rand(),
    tilt: 0.2 * (rand() - 0.5),
  }));
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let v = 0;
      for (const w of waves) v += w.a * Math.sin(w.f * (y + w.tilt * x) + w.phase);
      const grain = 10 * (rand() - 0.5);
      for (let c = 0; c < 3; c++) img[(y * size + x) * 3 + c] = base[c] + v + grain;
    }
  }
  return img;
}

function dust(rand: () => number, img: Float32Array, mask: Uint8Array, size: number): void {
  const n = 1 + Math.floor(rand() * 2);
  for (let k = 0; k < n; k++) {
    const s = 6 + Math.floor(rand() * 8);
    const x0 = 20 + Math.floor(rand() * (size - 40 - s));
    const y0 = 20 + Math.floor(rand() * (size - 40 - s));
    const shade = rand() < 0.5 ? 35 : 225;
    for (let y = y0; y < y0 + s; y++) {
      for (let x = x0; x < x0 + s; x++) {
        for (let c = 0; c < 3; c++) img[(y * size + x) * 3 + c] = shade + 10 * (rand() - 0.5);
        mask[y * size + x] = 255;
      }
    }
  }
}

function scratch(rand: () => number, img: Float32Array, mask: Uint8Array, size: number): void {
  const len = 40 + rand() * 60;
  const angle = rand() * Math.PI;
  const cx = size / 2 + (rand() - 0.5) * size * 0.4;
  const cy = size / 2 + (rand() - 0.5) * size * 0.4;
  const shade = rand() < 0.5 ? 40 : 220;
  for (let t = -len / 2; t <= len / 2; t += 0.5) {
    for (let w = -1; w <= 1; w++) {
      const x = Math.round(cx + t * Math.cos(angle) - w * Math.sin(angle));
      const y = Math.round(cy + t * Math.sin(angle) + w * Math.cos(angle));
      if (x < 0 || y < 0 || x >= size || y >= size) continue;
      for (let c = 0; c < 3; c++) img[(y * size + x) * 3 + c] = shade;
      mask[y * size + x] = 255;
    }
  }
}

async function writeRgb(path: string, img: Float32Array, size: number): Promise<void> {
  const bytes = Buffer.alloc(img.length);
  for (let i = 0; i < img.length; i++) bytes[i] = Math.max(0, Math.min(255, Math.round(img[i])));
  await sharp(bytes, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toFile(path);
}

async function writeMask(path: string, mask: Uint8Array, size: number): Promise<void> {
  await sharp(Buffer.from(mask), { raw: { width: size, height: size, channels: 1 } })
    .png()
    .toFile(path);
}

/** Writes the data set under `root` and returns the counts. */
export async function makeSyntheticDataset(
  root: string,
  options: SyntheticOptions = {},
): Promise<Record<string, number>> {
  const size = options.size ?? 256;
  const rand = mulberry32(options.seed ?? 7);
  const counts: Record<string, number> = {};
  const dir = async (...p: string[]) => {
    const d = join(root, ...p);
    await mkdir(d, { recursive: true });
    return d;
  };
  const trainDir = await dir('train', 'good');
  for (let i = 0; i < (options.train ?? 60); i++)
    await writeRgb(join(trainDir, `${String(i).padStart(3, '0')}.png`), surface(rand, size), size);
  counts.train_good = options.train ?? 60;
  const goodDir = await dir('test', 'good');
  for (let i = 0; i < (options.testGood ?? 12); i++)
    await writeRgb(join(goodDir, `${String(i).padStart(3, '0')}.png`), surface(rand, size), size);
  counts.test_good = options.testGood ?? 12;
  for (const [type, draw] of [
    ['dust', dust],
    ['scratch', scratch],
  ] as const) {
    const imgDir = await dir('test', type);
    const maskDir = await dir('ground_truth', type);
    const n = options.testPerDefect ?? 10;
    for (let i = 0; i < n; i++) {
      const img = surface(rand, size);
      const mask = new Uint8Array(size * size);
      draw(rand, img, mask, size);
      const name = String(i).padStart(3, '0');
      await writeRgb(join(imgDir, `${name}.png`), img, size);
      await writeMask(join(maskDir, `${name}_mask.png`), mask, size);
    }
    counts[`test_${type}`] = n;
  }
  return counts;
}
