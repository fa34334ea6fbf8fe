/**
 * The supervised head: logistic regression on globally averaged backbone features (OK = 0, NG = 1).
 *
 *   x̃ = (x − μ) / σ             per channel, μ and σ from the training images
 *   logit = w · x̃ + b            p(NG) = sigmoid(logit / T), T from temperature scaling
 *
 * Written here rather than taken from a training library: it is one linear layer trained with Adam on a
 * class-balanced, L2-regularised cross-entropy — about a hundred lines — and a library that trains
 * (TensorFlow.js) would add a dependency of hundreds of megabytes for it. Because the features are
 * averaged over positions and the head is linear, the class activation map is exact:
 * logit = mean over positions of (w · x̃(position) + b), so CAM(position) = w · x̃(position) + b.
 */
import { OPTIONS } from '../../options.js';
import type { EpochHistory } from '../method.js';
import { mulberry32 } from '../../util/random.js';

export interface HeadParams {
  mean: Float32Array;
  std: Float32Array;
  weight: Float32Array;
  bias: number;
  /** Temperature of the calibrated probabilities. */
  temperature: number;
}

export interface TrainSettings {
  epochs: number;
  learningRate: number;
  weightDecay: number;
  /** Epochs without a better validation loss before training stops. */
  patience: number;
  seed: number;
}

export const DEFAULT_TRAIN: TrainSettings = {
  epochs: OPTIONS.epochs.default,
  learningRate: 0.01,
  weightDecay: 1e-3,
  patience: OPTIONS.patience.default,
  seed: OPTIONS.seed.default,
};

/** A training example: its feature vectors (the original first, then augmented copies) and label. */
export interface Example {
  views: Float32Array[];
  label: 0 | 1;
}

export type EpochRecord = EpochHistory;

const sigmoid = (z: number) => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

/** Per-channel mean and standard deviation (σ floored so that constant channels do not divide by 0). */
export function standardizer(vectors: Float32Array[]): { mean: Float32Array; std: Float32Array } {
  const C = vectors[0].length;
  const mean = new Float32Array(C);
  const std = new Float32Array(C);
  for (const v of vectors) for (let c = 0; c < C; c++) mean[c] += v[c] / vectors.length;
  for (const v of vectors) for (let c = 0; c < C; c++) std[c] += (v[c] - mean[c]) ** 2 / vectors.length;
  for (let c = 0; c < C; c++) std[c] = Math.max(Math.sqrt(std[c]), 1e-6);
  return { mean, std };
}

/** The raw logit (before the temperature) of a feature vector. */
export function logitOf(p: Pick<HeadParams, 'mean' | 'std' | 'weight' | 'bias'>, x: Float32Array): number {
  let z = p.bias;
  for (let c = 0; c < x.length; c++) z += (p.weight[c] * (x[c] - p.mean[c])) / p.std[c];
  return z;
}

export const probability = (p: HeadParams, logit: number) => sigmoid(logit / p.temperature);

/** Class weights that give both classes the same total weight. */
function classWeights(labels: readonly number[]): [number, number] {
  const pos = labels.filter((l) => l === 1).length;
  const neg = labels.length - pos;
  return [neg ? labels.length / (2 * neg) : 0, pos ? labels.length / (2 * pos) : 0];
}

/** Class-balanced cross-entropy and accuracy (at p = 0.5) of logits. */
export function balancedLoss(
  logits: readonly number[],
  labels: readonly number[],
): { loss: number; accuracy: number } {
  const [w0, w1] = classWeights(labels);
  let loss = 0;
  let right = 0;
  logits.forEach((z, i) => {
    const y = labels[i];
    // log(1 + e^−z) for y = 1, log(1 + e^z) for y = 0, computed stably
    const s = y ? -z : z;
    loss += (y ? w1 : w0) * (Math.max(s, 0) + Math.log1p(Math.exp(-Math.abs(s))));
    if (z > 0 === (y === 1)) right++;
  });
  return { loss: loss / logits.length, accuracy: right / logits.length };
}

/** Adam (Kingma and Ba 2015) on one parameter vector, with bias-corrected moments. */
export class Adam {
  private readonly m: Float64Array;
  private readonly v: Float64Array;
  constructor(
    size: number,
    private readonly rate: number,
  ) {
    this.m = new Float64Array(size);
    this.v = new Float64Array(size);
  }

  /** One step of `theta` against `grad` at step number `t` (from 1). */
  step(theta: Float64Array, grad: Float64Array, t: number): void {
    const [beta1, beta2, eps] = [0.9, 0.999, 1e-8];
    const { m, v } = this;
    for (let j = 0; j < theta.length; j++) {
      m[j] = beta1 * m[j] + (1 - beta1) * grad[j];
      v[j] = beta2 * v[j] + (1 - beta2) * grad[j] ** 2;
      theta[j] -= (this.rate * (m[j] / (1 - beta1 ** t))) / (Math.sqrt(v[j] / (1 - beta2 ** t)) + eps);
    }
  }
}

/** An epoch's record: the loss and accuracy of its training logits, and of the validation's where given. */
export function epochRecord(
  epoch: number,
  train: { logits: readonly number[]; labels: readonly number[] },
  validation?: { logits: readonly number[]; labels: readonly number[] },
): EpochRecord {
  const t = balancedLoss(train.logits, train.labels);
  const v = validation?.logits.length ? balancedLoss(validation.logits, validation.labels) : undefined;
  return {
    epoch,
    train_loss: t.loss,
    train_accuracy: t.accuracy,
    val_loss: v?.loss ?? null,
    val_accuracy: v?.accuracy ?? null,
  };
}

/**
 * Trains the head with Adam (full batch; each epoch takes one view of every example, the original or an
 * augmented copy, drawn with the seeded generator) and early stopping on the validation loss: the weights
 * of the best validation epoch are kept. Without validation examples it trains for `epochs`.
 */
export function trainHead(
  train: Example[],
  validation: Example[],
  settings: TrainSettings,
  onEpoch?: (r: EpochRecord) => void,
): { params: HeadParams; history: EpochRecord[]; bestEpoch: number } {
  const C = train[0].views[0].length;
  const { mean, std } = standardizer(train.map((e) => e.views[0]));
  const norm = (x: Float32Array) => Float32Array.from(x, (v, c) => (v - mean[c]) / std[c]);
  const trainViews = train.map((e) => e.views.map(norm));
  const valX = validation.map((e) => norm(e.views[0]));
  const labels = train.map((e) => e.label);
  const valLabels = validation.map((e) => e.label);
  const [w0, w1] = classWeights(labels);
  // the weights w, then the bias
  const theta = new Float64Array(C + 1);
  const adam = new Adam(C + 1, settings.learningRate);
  const random = mulberry32(settings.seed);
  const logit = (x: Float32Array) => {
    let z = theta[C];
    for (let c = 0; c < C; c++) z += theta[c] * x[c];
    return z;
  };
  const history: EpochRecord[] = [];
  let best = { loss: Infinity, theta: theta.slice(), epoch: 0 };
  let since = 0;
  for (let epoch = 1; epoch <= settings.epochs; epoch++) {
    const grad = new Float64Array(C + 1);
    const xs = trainViews.map((views) => views[Math.floor(random() * views.length)]);
    const zs = xs.map(logit);
    xs.forEach((x, i) => {
      const g = ((labels[i] ? w1 : w0) * (sigmoid(zs[i]) - labels[i])) / xs.length;
      for (let c = 0; c < C; c++) grad[c] += g * x[c];
      grad[C] += g;
    });
    for (let c = 0; c < C; c++) grad[c] += settings.weightDecay * theta[c];
    adam.step(theta, grad, epoch);
    const record = epochRecord(epoch, { logits: zs, labels }, { logits: valX.map(logit), labels: valLabels });
    history.push(record);
    onEpoch?.(record);
    const watched = record.val_loss ?? record.train_loss;
    if (watched < best.loss - 1e-6) {
      best = { loss: watched, theta: theta.slice(), epoch };
      since = 0;
    } else if (valX.length && ++since >= settings.patience) break;
  }
  return {
    params: {
      mean,
      std,
      weight: Float32Array.from(best.theta.subarray(0, C)),
      bias: best.theta[C],
      temperature: 1,
    },
    history,
    bestEpoch: best.epoch,
  };
}

/** Negative log-likelihood of labels under sigmoid(logit / T). */
function nll(logits: readonly number[], labels: readonly number[], T: number): number {
  let s = 0;
  logits.forEach((z, i) => {
    const u = labels[i] ? -z / T : z / T;
    s += Math.max(u, 0) + Math.log1p(Math.exp(-Math.abs(u)));
  });
  return s / logits.length;
}

/** Validation images of each class below which the temperature is left at 1 (too few to fit it). */
export const MIN_CALIBRATION_IMAGES = 5;
/** The temperature's range: a validation set that the head separates perfectly would drive T to 0. */
const TEMPERATURE_RANGE = [0.25, 10] as const;

/**
 * Temperature scaling (Guo et al. 2017): the T that minimises the validation NLL of sigmoid(logit / T),
 * by golden-section search over log T in [log 0.25, log 10]. Needs MIN_CALIBRATION_IMAGES of each class;
 * else 1.
 */
export function fitTemperature(logits: readonly number[], labels: readonly number[]): number {
  const ng = labels.filter((l) => l === 1).length;
  if (ng < MIN_CALIBRATION_IMAGES || labels.length - ng < MIN_CALIBRATION_IMAGES) return 1;
  let [lo, hi] = TEMPERATURE_RANGE.map(Math.log);
  const g = (Math.sqrt(5) - 1) / 2;
  for (let i = 0; i < 80; i++) {
    const a = hi - g * (hi - lo);
    const c = lo + g * (hi - lo);
    if (nll(logits, labels, Math.exp(a)) < nll(logits, labels, Math.exp(c))) hi = c;
    else lo = a;
  }
  return Math.exp((lo + hi) / 2);
}

/**
 * Expected calibration error: the images in 10 equal-width bins of p(NG); the weighted mean of
 * |share of NG − mean p| over the bins. null without images.
 */
export function calibrationError(
  probabilities: readonly number[],
  labels: readonly number[],
  bins = 10,
): number | null {
  if (!probabilities.length) return null;
  const count = new Array<number>(bins).fill(0);
  const conf = new Array<number>(bins).fill(0);
  const pos = new Array<number>(bins).fill(0);
  probabilities.forEach((p, i) => {
    const k = Math.min(bins - 1, Math.floor(p * bins));
    count[k]++;
    conf[k] += p;
    pos[k] += labels[i];
  });
  let e = 0;
  for (let k = 0; k < bins; k++) if (count[k]) e += Math.abs(pos[k] - conf[k]) / probabilities.length;
  return e;
}
