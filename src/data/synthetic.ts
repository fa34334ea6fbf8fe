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

async function writeMask(path: string, mask: Uint8Array, width: number, height = width): Promise<void> {
  await sharp(Buffer.from(mask), { raw: { width, height, channels: 1 } })
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

export interface SurfaceOptions {
  width?: number;
  height?: number;
  train?: number;
  testGood?: number;
  testDust?: number;
  testScratch?: number;
  seed?: number;
  /** Factor on the defects' contrast (default 1: specks 28–58 gray levels, scratches 25–50). */
  contrast?: number;
  /** Called after each image written (done, total). */
  onProgress?: (done: number, total: number) => void;
}

/** Smooth 1-D noise of n samples: random values every `step` samples, cosine-interpolated. */
function smoothNoise(rand: () => number, n: number, step: number): Float32Array {
  const knots = Math.ceil(n / step) + 2;
  const k = Float32Array.from({ length: knots }, () => rand() * 2 - 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const f = i / step;
    const j = Math.floor(f);
    const t = (1 - Math.cos((f - j) * Math.PI)) / 2;
    out[i] = k[j] * (1 - t) + k[j + 1] * t;
  }
  return out;
}

/** A standard normal draw (Box-Muller). */
function gauss(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/**
 * A brushed-metal surface as a camera sees it: gray with a faint tint, fine streaks along the brushing
 * direction (row-wise noise at several scales), a smooth lighting gradient with vignetting, and sensor
 * noise. Returns gray levels (one channel) of width × height.
 */
function brushedMetal(rand: () => number, width: number, height: number): Float32Array {
  const img = new Float32Array(width * height);
  const base = 118 + 24 * rand();
  // streaks: per row, a fine and a coarse profile; each row drifts slowly along x
  const fine = smoothNoise(rand, height, 2);
  const coarse = smoothNoise(rand, height, 40);
  const along = smoothNoise(rand, width, 300);
  const gx = (rand() - 0.5) * 0.3;
  const gy = (rand() - 0.5) * 0.3;
  const cx = width * (0.3 + 0.4 * rand());
  const cy = height * (0.3 + 0.4 * rand());
  const r2 = (width * width + height * height) / 4;
  for (let y = 0; y < height; y++) {
    const streak = 7 * fine[y] + 10 * coarse[y];
    for (let x = 0; x < width; x++) {
      const light =
        1 + gx * (x / width - 0.5) + gy * (y / height - 0.5) - 0.18 * (((x - cx) ** 2 + (y - cy) ** 2) / r2);
      img[y * width + x] = (base + streak * (0.8 + 0.2 * along[x])) * light;
    }
  }
  return img;
}

/** A small rectangular speck of dust (dark or bright, soft-edged), in either orientation. */
function speck(
  rand: () => number,
  img: Float32Array,
  mask: Uint8Array,
  width: number,
  height: number,
  contrast: number,
): void {
  const short = 6 + Math.floor(rand() * 19);
  const long = 14 + Math.floor(rand() * 57);
  const [w, h] = rand() < 0.5 ? [short, long] : [long, short];
  const x0 = 40 + Math.floor(rand() * (width - 80 - w));
  const y0 = 40 + Math.floor(rand() * (height - 80 - h));
  const delta = (rand() < 0.5 ? -1 : 1) * (28 + 30 * rand()) * contrast;
  for (let y = y0; y < y0 + h; y++) {
    for (let x = x0; x < x0 + w; x++) {
      // softer at the edges: a pixel at the border gets 60 % of the contrast
      const edge = x === x0 || y === y0 || x === x0 + w - 1 || y === y0 + h - 1 ? 0.6 : 1;
      img[y * width + x] += delta * edge;
      mask[y * width + x] = 255;
    }
  }
}

/** A thin, slightly curved scratch (1–3 px wide, 150–700 px long). */
function longScratch(
  rand: () => number,
  img: Float32Array,
  mask: Uint8Array,
  width: number,
  height: number,
  contrast: number,
): void {
  const len = 150 + rand() * 550;
  const angle = rand() * Math.PI;
  const bend = (rand() - 0.5) * 0.002;
  const half = 0.5 + rand();
  const cx = width * (0.2 + 0.6 * rand());
  const cy = height * (0.2 + 0.6 * rand());
  const delta = (rand() < 0.5 ? -1 : 1) * (25 + 25 * rand()) * contrast;
  for (let t = -len / 2; t <= len / 2; t += 0.5) {
    const a = angle + bend * t;
    const px = cx + t * Math.cos(a);
    const py = cy + t * Math.sin(a);
    for (let w = -half; w <= half; w += 0.5) {
      const x = Math.round(px - w * Math.sin(a));
      const y = Math.round(py + w * Math.cos(a));
      if (x < 0 || y < 0 || x >= width || y >= height || mask[y * width + x]) continue;
      img[y * width + x] += delta;
      mask[y * width + x] = 255;
    }
  }
}

async function writeGray(path: string, img: Float32Array, width: number, height: number, rand: () => number) {
  const bytes = Buffer.alloc(img.length * 3);
  // a faint warm tint and sensor noise per channel
  const tint = [1.02, 1, 0.97];
  for (let i = 0; i < img.length; i++)
    for (let c = 0; c < 3; c++)
      bytes[i * 3 + c] = Math.max(0, Math.min(255, Math.round(img[i] * tint[c] + 2.5 * gauss(rand))));
  await sharp(bytes, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 3 })
    .toFile(path);
}

/**
 * Camera-sized images of brushed-metal parts in the MVTec AD layout: train/good, test/good,
 * test/dust (1–3 rectangular specks of 6–24 × 14–70 px, either orientation), test/scratch (a thin
 * scratch, sometimes with a speck), with masks. Seeded: the same seed gives the same files.
 * Default 3872×3200 (the users' camera), 40 + 20 good, 20 dust, 10 scratch.
 */
export async function makeSurfaceDataset(
  root: string,
  options: SurfaceOptions = {},
): Promise<Record<string, number>> {
  const width = options.width ?? 3872;
  const height = options.height ?? 3200;
  const rand = mulberry32(options.seed ?? 31);
  const contrast = options.contrast ?? 1;
  const plan: [string, number][] = [
    ['train/good', options.train ?? 40],
    ['test/good', options.testGood ?? 20],
    ['test/dust', options.testDust ?? 20],
    ['test/scratch', options.testScratch ?? 10],
  ];
  const total = plan.reduce((s, [, n]) => s + n, 0);
  let done = 0;
  const counts: Record<string, number> = {};
  for (const [part, n] of plan) {
    const dir = join(root, ...part.split('/'));
    await mkdir(dir, { recursive: true });
    const type = part.split('/')[1];
    const maskDir = join(root, 'ground_truth', type);
    if (type !== 'good') await mkdir(maskDir, { recursive: true });
    for (let i = 0; i < n; i++) {
      const img = brushedMetal(rand, width, height);
      const name = String(i).padStart(3, '0');
      if (type !== 'good') {
        const mask = new Uint8Array(width * height);
        if (type === 'dust') {
          const specks = 1 + Math.floor(rand() * 3);
          for (let k = 0; k < specks; k++) speck(rand, img, mask, width, height, contrast);
        } else {
          longScratch(rand, img, mask, width, height, contrast);
          if (rand() < 0.3) speck(rand, img, mask, width, height, contrast);
        }
        await writeMask(join(maskDir, `${name}_mask.png`), mask, width, height);
      }
      await writeGray(join(dir, `${name}.png`), img, width, height, rand);
      options.onProgress?.(++done, total);
    }
    counts[part.replace('/', '_')] = n;
  }
  return counts;
}
