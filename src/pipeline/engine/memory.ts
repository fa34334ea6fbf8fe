/**
 * Memory as a setting that is checked: before training or testing, the peak memory and the model size
 * are estimated from the settings (the method's own estimate, the backbone's activations, images being
 * decoded), and a setting that cannot fit is refused up front with a message that says what would fit —
 * never a silent climb until the machine swaps or the process is killed.
 *
 * The budget is KENSA_MEMORY (bytes, or with a K/M/G suffix) when set, else 80 % of the machine's memory
 * (or of the container's limit).
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import type { ImageItem } from '../../data/dataset.js';
import { DECODE_BUDGET, probeImage } from '../../image/load.js';
import { fixedInputSize, type Preprocess } from '../../image/preprocess.js';
import { tileCount } from '../../image/tiles.js';
import type { Estimate, FitSettings, Method, MethodState } from '../../models/method.js';
import { KensaError } from '../../util/errors.js';
import { tr } from '../../i18n.js';

/** Bytes of backbone activations per input pixel at batch 1 (measured peak for EfficientNet-Lite0 and ResNet-18, with margin). */
const BACKBONE_BYTES_PER_PIXEL = 700;
/** The process itself: Node.js, onnxruntime, sharp, the backbone's weights. */
const BASE_BYTES = 400 * 2 ** 20;

export const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 2 : 1)} GiB`;
export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** Parses "3G", "1500M", "2147483648" into bytes. */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(text);
  if (!m)
    throw new KensaError(
      'E_ARGUMENT',
      `Expected a size such as 3G or 1500M for KENSA_MEMORY but received '${text}'`,
    );
  const unit = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[
    m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'
  ];
  return Math.floor(Number(m[1]) * unit);
}

function containerLimit(): number | undefined {
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    try {
      const v = Number(readFileSync(file, 'utf8').trim());
      if (Number.isFinite(v) && v > 0 && v < 2 ** 50) return v;
    } catch {
      // not in a container, or another cgroup layout
    }
  }
  return undefined;
}

/** The memory kensa allows itself, in bytes. */
export function memoryBudget(): number {
  const env = process.env.KENSA_MEMORY;
  if (env) return parseBytes(env);
  return 0.8 * Math.min(totalmem(), containerLimit() ?? Infinity);
}

/** Peak backbone activation bytes for a batch of inputs of `pixels` each. */
export function backboneBytes(pixels: number, batch: number): number {
  return BACKBONE_BYTES_PER_PIXEL * pixels * batch;
}

/**
 * The size of a typical processed image and its inputs, from the preprocessing alone when it fixes the
 * size, else from the headers of a few images (the largest of them); `uniform` says whether those agree.
 */
async function typicalInput(
  preprocess: Preprocess,
  items: readonly ImageItem[],
  pixelLimit?: number,
): Promise<{
  width: number;
  height: number;
  inputs: number;
  inputPixels: number;
  uniform: boolean;
  decodeBytes: number;
}> {
  let size = fixedInputSize(preprocess);
  let uniform = true;
  // the headers of a few images (first, middle, last): their processed size, and what decoding takes
  const picks = [...new Set([0, items.length >> 1, items.length - 1])].filter(
    (i) => i >= 0 && i < items.length && !items[i].bytes,
  );
  const sizes: { width: number; height: number }[] = [];
  let decode = 0;
  for (const i of picks) {
    try {
      const probe = await probeImage(items[i].path, preprocess, { pixelLimit });
      sizes.push({ width: probe.geometry.inputWidth, height: probe.geometry.inputHeight });
      decode = Math.max(decode, probe.decodeBytes);
    } catch {
      // an unreadable image is reported when it is loaded
    }
  }
  if (!size) {
    size = sizes.reduce((a, b) => (b.width * b.height > a.width * a.height ? b : a), { width: 0, height: 0 });
    uniform = sizes.every((s) => s.width === size!.width && s.height === size!.height);
    if (size.width === 0) size = { width: 224, height: 224 };
  }
  const tile = preprocess.tile;
  let inputs = 1;
  if (tile) {
    if (size.width < tile.size || size.height < tile.size) {
      throw new KensaError(
        'E_ARGUMENT',
        `the images are ${size.width}×${size.height} pixels after preprocessing, smaller than the ${tile.size}×${tile.size} tile; ` +
          'choose a smaller --tile or a larger --scale',
      );
    }
    inputs = tileCount(size.width, size.height, tile);
  }
  const inputPixels = tile ? tile.size * tile.size : size.width * size.height;
  return { ...size, inputs, inputPixels, uniform, decodeBytes: decode };
}

/**
 * Decoding buffers at once: two images of the largest decode seen (one being decoded ahead of the one
 * being resized), never beyond image/load.ts's process-wide decode budget unless one image alone is.
 */
const decodingBytes = (largest: number) => Math.min(2 * largest, Math.max(DECODE_BUDGET, largest));

export interface FitPlan {
  channels: [number, number, number];
  preprocess: Preprocess;
  items: readonly ImageItem[];
  grid?: [number, number];
  seed: number;
  d?: number;
  coreset?: number;
  neighbors?: number;
  defaultD?: number;
  batch: number;
  pixelLimit?: number;
  /**
   * Bytes of a network the model carries (--backbone-onnx): in the model file, and held twice while
   * training (the file's bytes and onnxruntime's copy of its weights).
   */
  carriedBytes?: number;
  onWarning?: (message: string) => void;
  /** Told the estimate before any work: peak memory against the budget, and the model's size. */
  onPlan?: (message: string) => void;
}

/** Input pixels per backbone batch: batches of large inputs (tiles, high resolution) hold fewer of them. */
export const BATCH_PIXELS = 32 * 224 * 224;

/**
 * Network inputs held back, in pixels, while they wait for more of their shape (images of several
 * shapes; inspector.ts, inputBatches): past it the oldest shape's inputs go through as they are.
 */
export const HOLD_PIXELS = 4 * BATCH_PIXELS;
/**
 * What the held inputs cost at most: their images' float tensors and RGB bytes (15 bytes a pixel), and
 * the maps and RGB bytes of images scored ahead of an earlier one still held (7 bytes a pixel).
 */
const HOLD_BYTES = 22 * HOLD_PIXELS;

/**
 * Peak bytes of a run: the method's part, the backbone's batch, images decoded ahead, inputs held for
 * batches of one shape, the process.
 */
export function peakBytes(
  methodBytes: number,
  inputPixels: number,
  batch: number,
  imagePixels: number,
  decodeBytes = 0,
): number {
  const inBatch = Math.max(1, Math.min(batch, Math.floor(BATCH_PIXELS / inputPixels)));
  // a decoded image: float tensor, RGB bytes and the map (4 + 3 + 4 bytes per pixel), two at a time;
  // and the decoder's own buffers of the images being decoded
  return (
    BASE_BYTES +
    methodBytes +
    backboneBytes(inputPixels, inBatch) +
    2 * 11 * imagePixels +
    HOLD_BYTES +
    decodingBytes(decodeBytes)
  );
}

/**
 * The method's fit settings for a training run, after checking that the run fits the memory budget:
 * refuses, naming the settings and what would fit, when it does not.
 */
export async function fitSettings(method: Method, plan: FitPlan): Promise<FitSettings> {
  const typical = await typicalInput(plan.preprocess, plan.items, plan.pixelLimit);
  // a method with per-position statistics takes its grid from the images when they all have one size
  const grid =
    plan.grid ??
    (method.fixedGrid && typical.uniform
      ? ([typical.height / method.stride, typical.width / method.stride] as [number, number])
      : undefined);
  const uniformGrid =
    grid ??
    (typical.uniform && !plan.preprocess.tile
      ? ([typical.height / method.stride, typical.width / method.stride] as [number, number])
      : undefined);
  const settings: FitSettings = {
    channels: plan.channels,
    grid,
    uniformGrid,
    cellsPerInput: grid ? grid[0] * grid[1] : (typical.inputPixels / (method.stride * method.stride)) | 0,
    images: plan.items.length,
    inputsPerImage: typical.inputs,
    cellsPerImage: Math.ceil((typical.width * typical.height) / (method.stride * method.stride)),
    seed: plan.seed,
    d: plan.d,
    coreset: plan.coreset,
    neighbors: plan.neighbors,
    defaultD: plan.defaultD,
    onWarning: plan.onWarning,
  };
  const checked: Estimate = method.check(settings);
  const carried = plan.carriedBytes ?? 0;
  const estimate = { ...checked, modelBytes: checked.modelBytes + carried };
  const peak = peakBytes(
    estimate.fitBytes + 2 * carried,
    typical.inputPixels,
    plan.batch,
    typical.width * typical.height,
    typical.decodeBytes,
  );
  const budget = memoryBudget();
  if (peak > budget) {
    throw new KensaError(
      'E_ARGUMENT',
      `training ${method.name} with these settings needs about ${gib(peak)} of memory (${estimate.detail}), more than the ${gib(budget)} allowed` +
        ` (80 % of this machine's memory, or KENSA_MEMORY). ${whatFits(method, settings, budget, typical.inputPixels, plan.batch, typical.width * typical.height)}`,
    );
  }
  plan.onPlan?.(
    tr(
      `about ${gib(peak)} of memory at peak (${gib(budget)} allowed), a model of about ${mib(estimate.modelBytes)}; ${estimate.detail}`,
      `ピーク時のメモリは約 ${gib(peak)}（上限 ${gib(budget)}）、モデルは約 ${mib(estimate.modelBytes)}。${estimate.detail}`,
    ),
  );
  return settings;
}

/** A suggestion that fits the budget: fewer images, or (PaDiM) fewer channels. */
function whatFits(
  method: Method,
  settings: FitSettings,
  budget: number,
  inputPixels: number,
  batch: number,
  imagePixels: number,
): string {
  const fits = (s: FitSettings) => {
    try {
      return peakBytes(method.check(s).fitBytes, inputPixels, batch, imagePixels) <= budget;
    } catch {
      return false;
    }
  };
  const lighter = method.lighter ? `--method ${method.lighter} needs less; or ` : '';
  const advice = (text: string) => {
    const all = lighter + text;
    return all[0].toUpperCase() + all.slice(1);
  };
  if (settings.grid && method.fixedGrid) {
    for (let d = (settings.d ?? settings.defaultD ?? 100) - 8; d >= 8; d -= 8)
      if (fits({ ...settings, d }))
        return advice(`--d ${d} would fit; or lower --size (or --tile), or raise KENSA_MEMORY`);
  }
  for (let images = settings.images - 1; images >= 2; images = Math.floor(images * 0.9))
    if (fits({ ...settings, images }))
      return advice(
        `about ${images} training images would fit; or lower --size or --scale, or raise KENSA_MEMORY`,
      );
  return advice('lower --size, --scale or --tile, or raise KENSA_MEMORY');
}

/**
 * Checks that scoring with a model fits the budget, before test or predict start: the method's part, a
 * backbone batch of the model's inputs, images decoded ahead and the decoder's buffers (from the headers
 * of a few of `items`, when given). Refuses with what would fit.
 */
export async function checkScoring(
  method: Method,
  state: MethodState,
  preprocess: Preprocess,
  batch: number,
  items: readonly ImageItem[] = [],
  pixelLimit?: number,
): Promise<{ peak: number; budget: number }> {
  const fixed = preprocess.tile
    ? { width: preprocess.tile.size, height: preprocess.tile.size }
    : fixedInputSize(preprocess);
  let typical = { width: 0, height: 0, decodeBytes: 0, image: 0 };
  if (items.length) {
    try {
      const t = await typicalInput(preprocess, items, pixelLimit);
      typical = { ...t, image: t.width * t.height };
    } catch {
      // a tile larger than the images: each such image is an error of its own when it is scored
    }
  }
  // without images to look at: about size² pixels, or a large camera image at native scale
  const assumed =
    fixed ??
    (preprocess.mode === 'fit'
      ? { width: preprocess.size, height: preprocess.size }
      : { width: 2048, height: 2048 });
  const input = fixed ?? (typical.image ? typical : assumed);
  const inputPixels = input.width * input.height;
  const imagePixels = typical.image || inputPixels;
  const cells = inputPixels / (method.stride * method.stride);
  const inBatch = Math.max(1, Math.min(batch, Math.floor(BATCH_PIXELS / inputPixels)));
  const peak = peakBytes(
    method.scoreBytes(state, inBatch, cells),
    inputPixels,
    batch,
    imagePixels,
    typical.decodeBytes,
  );
  const budget = memoryBudget();
  if (peak > budget) {
    throw new KensaError(
      'E_ARGUMENT',
      `scoring with this ${method.name} model needs about ${gib(peak)} of memory, more than the ${gib(budget)} allowed ` +
        "(80 % of this machine's memory, or KENSA_MEMORY); lower --batch, or raise KENSA_MEMORY on a larger machine",
    );
  }
  return { peak, budget };
}
