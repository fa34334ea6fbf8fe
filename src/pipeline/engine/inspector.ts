/**
 * Images through a model, the same way for every method and every use (fitting, calibration, test,
 * predict): decode (a few images ahead, bounded by pixels) → cut each processed image into its network
 * inputs (the whole image or tiles) → backbone batches of inputs of one size → the method's scorer →
 * patch scores stitched into one grid per image → the shared map step → map and image score.
 *
 * The score of an image depends on the image and the model only — never on which other images are in
 * the same batch or run.
 */
import type { ModelBackbone } from '../../backbone/registry.js';
import type { ResolvedWeights } from '../../backbone/weights.js';
import { Backbone } from '../../backbone/backbone.js';
import type { ImageItem } from '../../data/dataset.js';
import { decodeImage, loadImage, loadMask, type LoadedImage } from '../../image/load.js';
import type { Preprocess } from '../../image/preprocess.js';
import { inputRects, type InputRect } from '../../image/tiles.js';
import type { CellRect, Features, MemberScore, Scorer } from '../../models/method.js';
import { getMethod } from '../../models/registry.js';
import { MapStep, type MapSettings } from '../../postprocess/anomaly-map.js';
import { KensaError } from '../../util/errors.js';
import type { ProgressCallback } from '../../util/progress.js';
import { BATCH_PIXELS, checkScoring, gib, HOLD_PIXELS } from './memory.js';

export { BATCH_PIXELS };
import type { KensaModel } from '../contracts/model-file.js';
import { tr } from '../../i18n.js';

/** Most network inputs per backbone batch when scoring (larger batches speed up per-position products). */
export const DEFAULT_BATCH = 32;
/** Most network inputs per backbone batch while fitting (calibration scoring uses DEFAULT_BATCH). */
export const DEFAULT_FIT_BATCH = 16;
/**
 * Input pixels per backbone batch while fitting, when every training patch is held besides: half of
 * BATCH_PIXELS (memory.ts), so that the backbone's own buffers for tiles stay small (3872×3200 camera
 * images at --scale 0.5 --tile 512: 3 tiles a batch, peak 2.54 GB against 2.74 at 6, the same time;
 * 224-pixel images: DEFAULT_FIT_BATCH of them, as before).
 */
export const FIT_BATCH_PIXELS = BATCH_PIXELS / 2;
/** Processed pixels decoded ahead of the backbone. */
const PREFETCH_PIXELS = 48 * 224 * 224;

export interface LoadedItem {
  item: ImageItem;
  /** Position in the list being processed. */
  index: number;
  image: LoadedImage;
  mask?: Uint8Array;
}

export interface ScoredImage extends LoadedItem {
  /** Anomaly map at the processed size (image.geometry.inputHeight × inputWidth). */
  map: Float32Array;
  /** The map's maximum. */
  mapMax: number;
  /**
   * The image score: the map's maximum, or the method's own image-level score where it has one
   * (PatchCore's re-weighted nearest-neighbour distance of its peak patch, as anomalib computes it).
   */
  score: number;
  /** Where the method weighs members together (the ensemble): each member's score, from the scoring tile. */
  members?: MemberScore[];
}

export interface LoadOptions {
  loadMasks?: boolean;
  pixelLimit?: number;
  /** Called for an image that cannot be read; without it the first such error is thrown. */
  onError?: (item: ImageItem, error: Error) => void;
  /** Called with what was odd but usable (e.g. a mask of another size than its image). */
  onWarning?: (message: string) => void;
  /** Called after onError with the position of the image left out (the run's own bookkeeping). */
  onSkip?: (index: number) => void;
}

export interface RunOptions extends LoadOptions {
  /** Most network inputs per backbone batch. */
  batch?: number;
  /** Most input pixels per backbone batch (default BATCH_PIXELS). */
  batchPixels?: number;
  /**
   * The one input size a method with per-position statistics was fitted on: an image whose inputs have
   * another size is an error for that image (onError), not a crash of the run.
   */
  inputSize?: { width: number; height: number };
  onProgress?: ProgressCallback;
  task?: string;
  /** Seconds spent, added up: in the backbone and in the method. */
  timing?: { backbone: number; method: number };
}

/**
 * Loads images in order with a few decoding ahead (as many as fit PREFETCH_PIXELS, at least one).
 * Unreadable images go to `onError` (and are skipped), or stop the run when there is no `onError`.
 */
export async function* loadImages(
  items: readonly ImageItem[],
  preprocess: Preprocess,
  options: LoadOptions = {},
): AsyncGenerator<LoadedItem> {
  const loadOne = async (index: number): Promise<LoadedItem> => {
    const item = items[index];
    const image = item.bytes
      ? await decodeImage(item.bytes, item.path, preprocess, { pixelLimit: options.pixelLimit })
      : await loadImage(item.path, preprocess, { pixelLimit: options.pixelLimit });
    if (!options.loadMasks || !item.mask) return { item, index, image };
    const { mask, warnings } = await loadMask(item.mask, preprocess, image.width, image.height, {
      pixelLimit: options.pixelLimit,
    });
    warnings.forEach((w) => options.onWarning?.(w));
    return { item, index, image, mask };
  };
  const queue: { index: number; result: Promise<PromiseSettledResult<LoadedItem>> }[] = [];
  const settle = (p: Promise<LoadedItem>) =>
    p.then(
      (value) => ({ status: 'fulfilled', value }) as const,
      (reason: unknown) => ({ status: 'rejected', reason }) as const,
    );
  let next = 0;
  let window = 2;
  while (next < items.length || queue.length) {
    while (next < items.length && queue.length < window) {
      queue.push({ index: next, result: settle(loadOne(next)) });
      next++;
    }
    const { index, result } = queue.shift()!;
    const r = await result;
    if (r.status === 'rejected') {
      if (!options.onError) throw r.reason;
      options.onError(items[index], r.reason as Error);
      options.onSkip?.(index);
      continue;
    }
    const g = r.value.image.geometry;
    window = Math.max(1, Math.min(16, Math.floor(PREFETCH_PIXELS / (g.inputWidth * g.inputHeight))));
    yield r.value;
  }
}

/** An image on its way through the backbone: its inputs, and how many have been scored. */
export interface PendingImage extends LoadedItem {
  rects: InputRect[];
  done: number;
}

export interface InputBatch {
  features: Features;
  inputs: { image: PendingImage; rect: InputRect }[];
}

function cut(image: LoadedImage, rect: InputRect, into: Float32Array, at: number): void {
  const { inputWidth: W, inputHeight: H } = image.geometry;
  const src = image.tensor;
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < rect.height; y++) {
      const from = c * H * W + (rect.y + y) * W + rect.x;
      into.set(src.subarray(from, from + rect.width), at + (c * rect.height + y) * rect.width);
    }
  }
}

/**
 * The network inputs of the images in backbone batches of inputs of one size (at most `batch`, fewer
 * for large inputs), with the backbone's features. Images of different shapes (aspect ratio kept) wait in
 * one queue per shape, so that each batch is full where it can be: a shape's queue goes when it holds a
 * batch, or when everything held passes HOLD_PIXELS (memory.ts; then the queue holding the oldest input goes first).
 * An image's inputs all have its shape, so each image is scored in one queue, in order; across images the
 * batches may come out of the images' order (`inOrder` keeps it: one queue, each batch ended by a change
 * of shape). A batch's result for an image never depends on the other images in it. An image's tensor is
 * let go once all its inputs have been cut.
 */
export async function* inputBatches(
  backbone: Backbone,
  items: readonly ImageItem[],
  preprocess: Preprocess,
  options: RunOptions & { inOrder?: boolean } = {},
): AsyncGenerator<InputBatch> {
  const most = options.batch ?? DEFAULT_BATCH;
  type Input = { image: PendingImage; rect: InputRect };
  // one queue per input shape; a Map iterates in insertion order and a queue is deleted when it goes,
  // so the first queue is the one holding the oldest input
  const queues = new Map<string, Input[]>();
  let held = 0;
  const flush = async (key: string): Promise<InputBatch> => {
    const inputs = queues.get(key)!;
    queues.delete(key);
    const { width, height } = inputs[0].rect;
    held -= inputs.length * width * height;
    const per = 3 * width * height;
    const x = new Float32Array(per * inputs.length);
    inputs.forEach((input, i) => cut(input.image.image, input.rect, x, i * per));
    for (const input of inputs) {
      if (input.rect === input.image.rects[input.image.rects.length - 1])
        input.image.image.tensor = new Float32Array(0);
    }
    const t0 = performance.now();
    const features = await backbone.extract(x, inputs.length, height, width);
    if (options.timing) options.timing.backbone += (performance.now() - t0) / 1000;
    return { features, inputs };
  };
  for await (const loaded of loadImages(items, preprocess, options)) {
    const g = loaded.image.geometry;
    let rects: InputRect[];
    try {
      rects = inputRects(g.inputWidth, g.inputHeight, preprocess.tile);
      const want = options.inputSize;
      if (want && (rects[0].width !== want.width || rects[0].height !== want.height)) {
        throw new Error(
          `after preprocessing this image is ${rects[0].width}×${rects[0].height} pixels, but the model's PaDiM statistics are for ${want.width}×${want.height} inputs ` +
            '(one Gaussian per position needs one size), so the model cannot score it. A model that takes every shape: ' +
            'kensa train with --square or --tile, or --method patchcore',
        );
      }
    } catch (error) {
      const problem = new KensaError('E_ARGUMENT', (error as Error).message, { file: loaded.item.path });
      if (!options.onError) throw problem;
      options.onError(loaded.item, problem);
      options.onSkip?.(loaded.index);
      continue;
    }
    const image: PendingImage = { ...loaded, rects, done: 0 };
    for (const rect of rects) {
      const key = `${rect.width}x${rect.height}`;
      if (options.inOrder && queues.size && !queues.has(key)) yield await flush(queues.keys().next().value!);
      let queue = queues.get(key);
      if (!queue) queues.set(key, (queue = []));
      queue.push({ image, rect });
      held += rect.width * rect.height;
      const pixels = options.batchPixels ?? BATCH_PIXELS;
      const limit = Math.max(1, Math.min(most, Math.floor(pixels / (rect.width * rect.height))));
      if (queue.length >= limit) yield await flush(key);
    }
    while (held > HOLD_PIXELS) yield await flush(queues.keys().next().value!);
  }
  while (queues.size) yield await flush(queues.keys().next().value!);
}

/** Map steps by geometry, built once each. */
export class MapSteps {
  private readonly steps = new Map<string, MapStep>();
  constructor(private readonly settings: MapSettings) {}

  get(h: number, w: number, H: number, W: number): MapStep {
    const key = `${h},${w},${H},${W}`;
    let step = this.steps.get(key);
    if (!step) {
      if (this.steps.size > 64) this.steps.clear();
      step = new MapStep(h, w, H, W, this.settings);
      this.steps.set(key, step);
    }
    return step;
  }
}

/** Images → maps and scores with a backbone, a method's scorer and the map step. */
export async function* scoreImages(
  backbone: Backbone,
  scorer: Scorer,
  map: MapSettings,
  preprocess: Preprocess,
  items: readonly ImageItem[],
  options: RunOptions = {},
): AsyncGenerator<ScoredImage> {
  const s = scorer.stride;
  const steps = new MapSteps(map);
  const grids = new Map<
    PendingImage,
    { grid: Float32Array; raw: number; score: number; members?: MemberScore[] }
  >();
  let done = 0;
  const onError =
    options.onError &&
    ((item: ImageItem, error: Error) => {
      done++;
      options.onError!(item, error);
    });
  // images come out of the batches in any order (inputBatches): each waits until every image before it
  // in `items` is out or left out, so that the run's results keep the images' order
  const ready = new Map<number, ScoredImage | undefined>();
  let next = 0;
  const onSkip = (index: number) => {
    ready.set(index, undefined);
    options.onSkip?.(index);
  };
  const batches = { ...options, batch: options.batch ?? scorer.batch, onError, onSkip };
  for await (const batch of inputBatches(backbone, items, preprocess, batches)) {
    const t0 = performance.now();
    const owned = batch.inputs.map(({ rect }) => ownedCells(rect, s));
    const scores = await scorer.score(batch.features, owned);
    const [, h, w] = scores.dims;
    const grid = scores.grid;
    batch.inputs.forEach(({ image, rect }, b) => {
      const g = image.image.geometry;
      const gw = g.inputWidth / s;
      let entry = grids.get(image);
      if (!entry) {
        entry = { grid: new Float32Array((g.inputHeight / s) * gw), raw: -Infinity, score: -Infinity };
        grids.set(image, entry);
      }
      const o = owned[b];
      for (let y = o.y0; y < o.y1; y++) {
        const from = b * h * w + y * w;
        entry.grid.set(grid.subarray(from + o.x0, from + o.x1), (rect.y / s + y) * gw + rect.x / s + o.x0);
      }
      if (scores.peaks && scores.peaks.raw[b] > entry.raw) {
        entry.raw = scores.peaks.raw[b];
        entry.score = scores.peaks.score[b];
        entry.members = scores.peaks.members?.map((m) => ({ score: m.score[b], low: m.low[b] }));
      }
      image.done++;
      if (image.done === image.rects.length) {
        grids.delete(image);
        const { rects: _r, done: _d, ...loaded } = image;
        const out = new Float32Array(g.inputWidth * g.inputHeight);
        const mapMax = steps.get(g.inputHeight / s, gw, g.inputHeight, g.inputWidth).apply(entry.grid, out);
        const score = scores.peaks ? entry.score : mapMax;
        checkFinite(entry.grid, score, image.item.path);
        ready.set(image.index, {
          ...loaded,
          map: out,
          mapMax,
          score,
          ...(entry.members ? { members: entry.members } : {}),
        });
      }
    });
    if (options.timing) options.timing.method += (performance.now() - t0) / 1000;
    // a large image in tiles: say how far into it the run is
    const last = batch.inputs[batch.inputs.length - 1].image;
    if (last.rects.length > 1 && last.done < last.rects.length) {
      options.onProgress?.({
        task: options.task ?? 'score',
        done,
        total: items.length,
        unit: 'images',
        detail: `image ${last.index + 1}: tile ${last.done}/${last.rects.length}`,
      });
    }
    for (; ready.has(next); next++) {
      const r = ready.get(next);
      ready.delete(next);
      if (!r) continue;
      yield r;
      done++;
      options.onProgress?.({ task: options.task ?? 'score', done, total: items.length, unit: 'images' });
    }
  }
}

/**
 * A score that is not a finite number (NaN, ±infinity: statistics that overflow) is an error of the
 * model, never a verdict: a comparison with NaN would say OK. It stops the run (exit 1; HTTP 500).
 */
export function checkFinite(grid: Float32Array, score: number, file: string): void {
  let bad = Number.isFinite(score) ? -1 : 0;
  for (let i = 0; bad < 0 && i < grid.length; i++) if (!Number.isFinite(grid[i])) bad = i;
  if (bad < 0) return;
  throw new KensaError(
    'E_RUNTIME',
    `the model gave a score that is not a number (${Number.isFinite(score) ? grid[bad] : score}) for this image, so no verdict can be given: ` +
      'its statistics overflow (a damaged or hand-edited model file). Train the model again, or restore the file from where it was trained',
    { file },
  );
}

/** The cells of a grid at `stride` that a network input owns. */
function ownedCells(rect: InputRect, stride: number): CellRect {
  return {
    y0: rect.owned.y0 / stride,
    y1: rect.owned.y1 / stride,
    x0: rect.owned.x0 / stride,
    x1: rect.owned.x1 / stride,
  };
}

/**
 * Feature batches for fitting: the features, each input's image index in `items`, and the cells it owns
 * at the method's `stride`.
 */
export async function* featureBatches(
  backbone: Backbone,
  items: readonly ImageItem[],
  preprocess: Preprocess,
  options: RunOptions = {},
  stride: number,
): AsyncGenerator<{ features: Features; images: number[]; owned: CellRect[]; completed: number }> {
  let completed = 0;
  const fitting = { batchPixels: FIT_BATCH_PIXELS, ...options };
  for await (const batch of inputBatches(backbone, items, preprocess, fitting)) {
    for (const { image } of batch.inputs) {
      image.done++;
      if (image.done === image.rects.length) completed++;
    }
    yield {
      features: batch.features,
      images: batch.inputs.map((i) => i.image.index),
      owned: batch.inputs.map(({ rect }) => ownedCells(rect, stride)),
      completed,
    };
  }
}

export interface OpenOptions {
  weights?: string;
  cacheDir?: string;
  threads?: number;
  /** Most network inputs per backbone batch (for the memory check). */
  batch?: number;
  /** Told the memory estimate before the backbone loads. */
  onPlan?: (message: string) => void;
  /** The images about to be scored: the headers of a few of them size the memory estimate. */
  items?: readonly ImageItem[];
  pixelLimit?: number;
}

/** Loads a model's backbone; refuses weights that differ from those the model was trained with. */
export async function backboneFor(model: KensaModel, options: OpenOptions = {}): Promise<Backbone> {
  const { onnx } = model.meta.backbone;
  if (onnx) {
    if (options.weights)
      throw new KensaError(
        'E_ARGUMENT',
        `the model carries its own backbone (${onnx.file}, brought with --backbone-onnx); --weights does not apply to it`,
      );
    if (!model.backboneOnnx)
      throw new KensaError('E_ARGUMENT', `the model's ONNX backbone ${onnx.file} was not loaded with it`);
    return Backbone.fromOnnx(model.backboneOnnx, onnx.layers, onnx.file, { threads: options.threads });
  }
  const backbone = await Backbone.load(model.meta.backbone.name, options);
  try {
    if (backbone.weights) checkWeights(model, backbone.weights);
  } catch (error) {
    await backbone.dispose();
    throw error;
  }
  return backbone;
}

/** Refuses weights other than those the model was trained with (the official file counts as itself). */
export function checkWeights(model: { meta: { backbone: ModelBackbone } }, weights: ResolvedWeights): void {
  if (weights.sha256 === model.meta.backbone.weights_sha256) return;
  if (weights.official && model.meta.backbone.weights_official) return;
  throw new KensaError(
    'E_ARGUMENT',
    `the model was trained with ${model.meta.backbone.name} weights of sha256 ${model.meta.backbone.weights_sha256}, ` +
      `but ${weights.path} has sha256 ${weights.sha256}. Pass the same weights with --weights`,
  );
}

/** A model ready to score images: its backbone and its method's scorer. */
export class Inspector {
  private constructor(
    readonly model: KensaModel,
    readonly backbone: Backbone,
    private readonly scorer: Scorer,
  ) {}

  static async open(model: KensaModel, options: OpenOptions = {}): Promise<Inspector> {
    const method = getMethod(model.meta.method);
    const { peak, budget } = await checkScoring(
      method,
      model.state,
      model.meta.preprocess,
      options.batch ?? DEFAULT_BATCH,
      options.items,
      options.pixelLimit,
    );
    options.onPlan?.(
      tr(
        `about ${gib(peak)} of memory at peak (${gib(budget)} allowed), whatever the number of images`,
        `ピーク時のメモリは約 ${gib(peak)}（上限 ${gib(budget)}）。画像の枚数によりません`,
      ),
    );
    const backbone = await backboneFor(model, options);
    try {
      return new Inspector(model, backbone, await method.openScorer(model.state));
    } catch (error) {
      await backbone.dispose();
      throw error;
    }
  }

  score(items: readonly ImageItem[], options: RunOptions = {}): AsyncGenerator<ScoredImage> {
    const method = getMethod(this.model.meta.method);
    const grid = method.inputGrid(this.model.state);
    const inputSize = grid && { height: grid[0] * method.stride, width: grid[1] * method.stride };
    return scoreImages(this.backbone, this.scorer, this.model.meta.map, this.model.meta.preprocess, items, {
      inputSize,
      ...options,
    });
  }

  async dispose(): Promise<void> {
    await this.scorer.release();
    await this.backbone.dispose();
  }
}
