/**
 * The method seam: what every anomaly-detection method provides, and nothing more.
 *
 *   fit:    a stream of backbone feature batches (good images only) → state tensors and metadata
 *   score:  backbone features → a grid of patch scores per image (or tile)
 *
 * Everything after the grid — the map step (upsampling, smoothing, image score), thresholds, decisions,
 * regions, metrics, figures, the report and the model file's layout — is shared and knows no method.
 * The pipeline picks a method by the name stored in the model (`meta.method`) through the registry
 * (models/registry.ts), never by testing which one it is.
 */
import type { NodeSpec, TensorProto } from '../onnx/graph.js';
import type { FeatureMap } from '../backbone/backbone.js';
import type { MapSettings } from '../postprocess/anomaly-map.js';
import type { Tensor } from '../util/tensor.js';

/** The backbone's three feature maps of a batch (strides 4, 8 and 16). */
export type Features = readonly [FeatureMap, FeatureMap, FeatureMap];

/** A rectangle of grid cells, half-open: rows y0..y1-1, columns x0..x1-1. */
export interface CellRect {
  y0: number;
  y1: number;
  x0: number;
  x1: number;
}

export interface PatchScores {
  /** [B, h, w] patch scores, row-major. */
  grid: Float32Array;
  dims: [number, number, number];
  /**
   * The method's own image-level score, when it is not the maximum of the smoothed map: per batch element
   * the highest raw patch score within its owned cells (`raw`) and the image score it gives (`score`).
   * PatchCore's re-weighted nearest-neighbour score is one. Absent: the image score is the map's maximum.
   */
  peaks?: {
    raw: Float32Array;
    score: Float32Array;
    /**
     * Where the image score weighs members' scores together (the ensemble): each member's own image score
     * and its grid's minimum over the owned cells, per batch element (Method.weigh sets the weights).
     */
    members?: { score: Float32Array; low: Float32Array }[];
  };
}

/** One member's image score and its grid's minimum, for one image (Method.weigh). */
export interface MemberScore {
  score: number;
  low: number;
}

export interface Scorer {
  /** Input pixels per grid cell. */
  readonly stride: number;
  /** Most inputs per backbone batch this scorer wants when the caller sets none (its memory grows with it). */
  readonly batch?: number;
  /**
   * Patch scores of a batch. `owned` (one per batch element): the cells each element owns — a tile of a
   * large image owns only the cells that no better-placed tile covers. Only those are stitched into the
   * image's map, so a scorer may leave the others unscored; `peaks` are looked for there only.
   */
  score(features: Features, owned?: readonly CellRect[]): Promise<PatchScores>;
  release(): Promise<void>;
}

/** A fitted method: its name, its tensors (as stored in the model file) and its metadata block. */
export interface MethodState {
  readonly method: string;
}

/** Training settings every method sees; each method checks the ones it uses. */
export interface FitSettings {
  /** Channels of the backbone's three maps. */
  channels: [number, number, number];
  /**
   * The grid of every network input at this method's stride, when all inputs have one size (fixed square,
   * crop or tile); undefined when the size varies from image to image (aspect kept, no tiles).
   */
  grid?: [number, number];
  /**
   * The grid of the typical input at this method's stride where the images looked at all have one size
   * (else undefined), whether or not the method needs one size: a method that resamples other sizes to a
   * grid of its own (the ensemble's PaDiM) takes this one where it can.
   */
  uniformGrid?: [number, number];
  /** Grid cells of one network input at this method's stride (typical, when the size varies). */
  cellsPerInput: number;
  /** Training images (for memory estimates and warnings). */
  images: number;
  /** Network inputs per image (tiles), for estimates. */
  inputsPerImage: number;
  /** Grid cells of one whole image at this method's stride (tiles' overlaps counted once), for estimates. */
  cellsPerImage: number;
  /** The backbone's default number of PaDiM channels. */
  defaultD?: number;
  seed: number;
  /** Method options as given by the user (undefined = the method's default). */
  d?: number;
  coreset?: number;
  neighbors?: number;
  onWarning?: (message: string) => void;
}

/** What a fold of the training images looks like to a fitter: its images and a way to read them again. */
export interface Fold {
  /** Training-image indices in this fold. */
  images: ReadonlySet<number>;
  /** Feature batches of the fold's images (read again from disk: features are never all kept). */
  features: () => AsyncIterable<{ features: Features; images: readonly number[] }>;
}

export interface Fitter<S extends MethodState = MethodState> {
  /**
   * Adds a batch of training features; `images` gives each batch element's training-image index and
   * `owned` the cells (at the method's stride) that each element owns: a tile of a large image owns the
   * cells no other tile covers better, so a method that pools patches from anywhere (PatchCore) can take
   * each part of an image once. A method with per-position statistics uses every cell.
   */
  add(features: Features, images: readonly number[], owned: readonly CellRect[]): Promise<void>;
  /**
   * A scorer fitted as if the fold's images had not been seen, for out-of-fold calibration. Called after
   * every batch has been added and before `finish`.
   */
  without(fold: Fold, onProgress?: (done: number, total: number) => void): Promise<Scorer>;
  /**
   * Where the method has one, a scorer that gives each training image the score of a model fitted on all
   * the others (leave-one-out), for calibration without folds; undefined where it cannot (e.g. images
   * that came as several tiles). Called after every batch has been added and before `finish`.
   */
  leaveOneOut?(onProgress?: (done: number, total: number) => void): Promise<Scorer | undefined>;
  /** The fitted state, from all added images. `onProgress` follows its longest step. */
  finish(onProgress?: (done: number, total: number) => void): Promise<S>;
  /** Frees what the fitter holds (also after a failure). */
  release(): Promise<void>;
  /** Seconds spent in the method's own steps (e.g. PatchCore's coreset), for train's timings. */
  readonly timings?: Record<string, number>;
}

/** Memory and model-file size a method expects for given settings, in bytes. */
export interface Estimate {
  /** Peak bytes the method itself holds while fitting (beyond the backbone and image loading). */
  fitBytes: number;
  /** Peak bytes the method holds while scoring. */
  scoreBytes: number;
  /** Model file size. */
  modelBytes: number;
  /** A short account of where the bytes go, for messages. */
  detail: string;
}

/**
 * A method's scoring as ONNX nodes, for `kensa export`: from the backbone's outputs (`layer1`, `layer2`,
 * `layer3`, batch first) to the patch-score grid [N, h, w] — the computation the Scorer runs, with the
 * state as initializers.
 */
export interface MethodGraph {
  nodes: NodeSpec[];
  initializers: TensorProto[];
  /** The value holding the grid [N, h, w]. */
  grid: string;
  /** The value holding the method's own image score [N], where it has one (else: the map's maximum). */
  score?: string;
  /** The raw peak [N] that decides which tile's score is the image's (PatchCore: the largest distance). */
  peak?: string;
}

export interface Method<S extends MethodState = MethodState> {
  readonly name: string;
  /** One line for help texts. */
  readonly summary: string;
  /**
   * 'unsupervised': fitted on good images only (kensa train, `createFitter`); 'supervised': trained on
   * labelled good and NG images by its own fitter (kensa classify train).
   */
  readonly learning: 'unsupervised' | 'supervised';
  /**
   * The open range of its image scores, where every threshold must lie: (0, ∞) for distances, (0, 1) for a
   * probability.
   */
  readonly scoreRange: readonly [number, number];
  /**
   * Whether the image score is the method's own (the scorer's `peaks`: PatchCore's re-weighted peak, the
   * classifier's probability) rather than the map's maximum; for a tiled image, the tile with the largest
   * raw peak gives it.
   */
  readonly ownScore: boolean;
  /** What its map shows, on the score's scale (the figures' colour bar; default: an anomaly score). */
  readonly mapLabel?: string;
  /** A method that needs less memory for the same images, named when this one's fit is refused. */
  readonly lighter?: string;
  /** Input pixels per grid cell. */
  readonly stride: number;
  /** The map step of new models. */
  readonly map: MapSettings;
  /** Whether the method needs every network input to have one size (per-position statistics). */
  readonly fixedGrid: boolean;
  /** The grid every input must have for this state, when the method needs one size. */
  inputGrid(state: S): [number, number] | undefined;
  /** Checks the settings before any work (throws a usage error naming the option); returns the estimate. */
  check(settings: FitSettings): Estimate;
  /** Bytes a scorer of this state holds, and its working memory for `batch` inputs of `cells` grid cells. */
  scoreBytes(state: S, batch: number, cells: number): number;
  createFitter(settings: FitSettings): Fitter<S>;
  /**
   * Where the method can take more good images without fitting again from scratch (kensa update): a fitter
   * that starts from a fitted state. The images added to it are the new ones (indices from 0); its
   * `without` and `leaveOneOut` leave out new images only, and `finish` gives the state of all of them.
   */
  resume?(
    state: S,
    settings: FitSettings,
    onProgress?: (done: number, total: number) => void,
  ): Promise<Fitter<S>>;
  openScorer(state: S): Promise<Scorer>;
  /**
   * The scorer's computation as ONNX nodes (kensa export). With `owned` (the name of a 0/1 input
   * [N, h, w]: a tile's own cells), the method's image score comes from those cells only, as when tiles
   * are stitched; `score` is then that tile's, and `peak` the raw value that picks the image's tile.
   */
  exportGraph(state: S, owned?: string): MethodGraph;
  /**
   * Where the image score weighs its members by the calibration (the ensemble): the state with those
   * weights set from the calibration images' member scores (ScoredImage.members, from the calibration's
   * out-of-sample scorers), and those images' scores and map minima under them. kensa train calls it once
   * the calibration images are scored; until then the state's weights are provisional.
   */
  weigh?(
    state: S,
    members: readonly (readonly MemberScore[])[],
  ): { state: S; scores: number[]; lows: number[] };
  /** The method's metadata block (its settings and sizes; stored in the model under the method's name). */
  describe(state: S): Record<string, unknown>;
  /** The state as model-file tensors (names prefixed with the method name) and its metadata block. */
  serialize(state: S): { tensors: [string, Tensor][]; meta: Record<string, unknown> };
  /**
   * The state from a model file's tensors and metadata block; returns a problem description instead when
   * they do not make a usable state (the caller names the file).
   */
  deserialize(
    tensors: ReadonlyMap<string, Tensor>,
    meta: unknown,
    context: { channels: [number, number, number]; formatVersion: number },
  ): S | string;
  /** Where the method trains by epochs: the losses and accuracies of each (drawn as learning curves). */
  history?(state: S): readonly EpochHistory[];
  /** Metrics of its own for kensa test's metrics.json, from the image scores and labels. */
  testMetrics?(state: S, scores: readonly number[], labels: readonly number[]): Record<string, number | null>;
}

/** One training epoch's losses and accuracies (null without validation images). */
export interface EpochHistory {
  epoch: number;
  train_loss: number;
  train_accuracy: number;
  val_loss: number | null;
  val_accuracy: number | null;
}

/**
 * The largest magnitude a stored feature statistic may have: backbone features (ImageNet-normalised
 * input, batch-normalised layers) stay within a few tens; a value near 1e38 is a damaged file, and it
 * would overflow the distances into infinity or NaN.
 */
export const PLAUSIBLE_FEATURE_LIMIT = 1e4;

/** What is wrong with stored feature values (non-finite, or beyond PLAUSIBLE_FEATURE_LIMIT), or undefined. */
export function featureProblem(name: string, values: Float32Array): string | undefined {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) return 'it holds non-finite numbers (NaN or infinity)';
    if (Math.abs(v) > PLAUSIBLE_FEATURE_LIMIT)
      return `its ${name} holds ${v.toPrecision(3)} at element ${i}, beyond any backbone feature (at most ${PLAUSIBLE_FEATURE_LIMIT} in magnitude): the file is damaged`;
  }
  return undefined;
}
