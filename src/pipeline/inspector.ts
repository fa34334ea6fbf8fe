/**
 * Scoring images with a model: load (and prefetch) images, run the backbone, Mahalanobis distances,
 * anomaly maps. The score of an image depends on the image and the model only — never on which other
 * images are in the same batch or run.
 */
import { Backbone } from '../backbone/backbone.js';
import type { ImageItem } from '../data/dataset.js';
import { loadImage, loadMask, type LoadedImage } from '../image/load.js';
import { inputSize, type Preprocess } from '../image/preprocess.js';
import { ScoreGraph } from '../models/padim/graphs.js';
import type { GaussianStats } from '../models/padim/model.js';
import { KensaError } from '../util/errors.js';
import type { ProgressCallback } from '../util/progress.js';
import type { KensaModel } from './model-file.js';

export const SIGMA = 4;
/** Images per batch: larger batches make the per-position matrix products markedly faster (bench/). */
export const DEFAULT_BATCH = 32;

export interface ScoredImage {
  item: ImageItem;
  image: LoadedImage;
  /** S×S anomaly map (smoothed Mahalanobis distances). */
  map: Float32Array;
  score: number;
  /** S×S 0/1 ground truth, when the item has a mask. */
  mask?: Uint8Array;
}

export interface ScoreOptions extends LoadOptions {
  batch?: number;
  onProgress?: ProgressCallback;
  task?: string;
  /** Seconds spent, added up: in the backbone and in the PaDiM graph (distances and maps). */
  timing?: { backbone: number; padim: number };
}

export interface LoadedItem {
  item: ImageItem;
  image: LoadedImage;
  mask?: Uint8Array;
}

export interface LoadOptions {
  loadMasks?: boolean;
  pixelLimit?: number;
  /** Called for an image that cannot be read; without it the first such error is thrown. */
  onError?: (item: ImageItem, error: Error) => void;
  /** Called with what was odd but usable (e.g. a mask of another size than its image). */
  onWarning?: (message: string) => void;
}

/**
 * Loads batches of images with the next batch decoding while the current one is scored. Unreadable
 * images go to `onError` (and are left out of the batch), or stop the run when there is no `onError`.
 */
export async function* loadBatches(
  items: ImageItem[],
  preprocess: Preprocess,
  batch: number,
  options: LoadOptions = {},
): AsyncGenerator<LoadedItem[]> {
  const loadOne = async (item: ImageItem): Promise<LoadedItem> => {
    const image = await loadImage(item.path, preprocess, { pixelLimit: options.pixelLimit });
    if (!options.loadMasks || !item.mask) return { item, image };
    const { mask, warnings } = await loadMask(item.mask, preprocess, image.width, image.height, {
      pixelLimit: options.pixelLimit,
    });
    warnings.forEach((w) => options.onWarning?.(w));
    return { item, image, mask };
  };
  const load = (slice: ImageItem[]) => Promise.allSettled(slice.map(loadOne));
  let next = items.length ? load(items.slice(0, batch)) : undefined;
  for (let i = 0; i < items.length; i += batch) {
    const settled = await next!;
    next = i + batch < items.length ? load(items.slice(i + batch, i + 2 * batch)) : undefined;
    const ok: LoadedItem[] = [];
    settled.forEach((r, k) => {
      if (r.status === 'fulfilled') ok.push(r.value);
      else if (options.onError) options.onError(items[i + k], r.reason as Error);
      else throw r.reason;
    });
    if (ok.length) yield ok;
  }
}

export function stackTensors(images: LoadedImage[]): Float32Array {
  const per = images[0].tensor.length;
  const x = new Float32Array(per * images.length);
  images.forEach((im, i) => x.set(im.tensor, i * per));
  return x;
}

export class Inspector {
  private constructor(
    readonly model: KensaModel,
    readonly backbone: Backbone,
    private readonly graph: ScoreGraph,
  ) {}

  /** Loads the model's backbone; refuses weights that differ from those the model was trained with. */
  static async open(
    model: KensaModel,
    options: { weights?: string; cacheDir?: string; threads?: number } = {},
  ): Promise<Inspector> {
    const backbone = await Backbone.load(model.meta.backbone.name, options);
    if (backbone.weights && backbone.weights.sha256 !== model.meta.backbone.weights_sha256) {
      const same = backbone.weights.official && model.meta.backbone.weights_official;
      if (!same) {
        await backbone.dispose();
        throw new KensaError(
          'E_ARGUMENT',
          `the model was trained with ${model.meta.backbone.name} weights of sha256 ${model.meta.backbone.weights_sha256}, ` +
            `but ${backbone.weights.path} has sha256 ${backbone.weights.sha256}. Pass the same weights with --weights`,
        );
      }
    }
    const graph = await scoreGraphFor(model.stats, model.meta.preprocess);
    return new Inspector(model, backbone, graph);
  }

  get size(): number {
    return inputSize(this.model.meta.preprocess);
  }

  async *score(items: ImageItem[], options: ScoreOptions = {}): AsyncGenerator<ScoredImage> {
    yield* scoreWith(this.backbone, this.graph, this.model.meta.preprocess, items, options);
  }

  async dispose(): Promise<void> {
    await this.graph.release();
    await this.backbone.dispose();
  }
}

export function scoreGraphFor(stats: GaussianStats, preprocess: Preprocess): Promise<ScoreGraph> {
  return ScoreGraph.create(stats.layout, stats.mean, stats.precision, inputSize(preprocess), SIGMA);
}

export async function* scoreWith(
  backbone: Backbone,
  graph: ScoreGraph,
  preprocess: Preprocess,
  items: ImageItem[],
  options: ScoreOptions = {},
): AsyncGenerator<ScoredImage> {
  const size = inputSize(preprocess);
  const batch = options.batch ?? DEFAULT_BATCH;
  let done = 0;
  // unreadable images count as done for the progress report
  const onError =
    options.onError && ((item: ImageItem, error: Error) => (done++, options.onError!(item, error)));
  for await (const loaded of loadBatches(items, preprocess, batch, { ...options, onError })) {
    const t0 = performance.now();
    const x = stackTensors(loaded.map((l) => l.image));
    const features = await backbone.extract(x, loaded.length, size, size);
    const t1 = performance.now();
    const { maps, scores } = await graph.run(features);
    if (options.timing) {
      options.timing.backbone += (t1 - t0) / 1000;
      options.timing.padim += (performance.now() - t1) / 1000;
    }
    for (let b = 0; b < loaded.length; b++) yield { ...loaded[b], map: maps[b], score: scores[b] };
    done += loaded.length;
    options.onProgress?.({ task: options.task ?? 'score', done, total: items.length, unit: 'images' });
  }
}
