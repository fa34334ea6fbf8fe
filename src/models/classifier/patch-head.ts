/**
 * The patch head: a supervised OK/NG decision made per patch and max-pooled over the image, on top of the
 * anomaly model (multiple-instance learning: an NG image has at least one NG patch, a good image none).
 *
 *   l(p)  = w · x̃(p) + Σ_j a_j · s̃_j(p) + b   per patch p; x̃ the standardised patch embedding, s̃_j the
 *                                              anomaly model's standardised patch scores (one per member:
 *                                              PatchCore's distance; with the ensemble also PaDiM's)
 *   logit = max over p of l(p)             p(NG) = sigmoid(logit / T)
 *
 * So the image's probability is its most NG patch's, and the map of l is exact: the image is NG where,
 * and only where, a patch is. The head starts as the anomaly model (w = 0, every a_j = 1: its ranking of
 * patches by the sum of their standardised anomaly scores) and learns from the NG images what those scores
 * alone miss; the number of epochs (chosen by early stopping on held-out folds, crossFit) and the weight
 * decay keep it near that start. Trained with Adam on the class-balanced cross-entropy (head.ts), full
 * batch; the gradient of the max goes to the image's top patch.
 *
 * The images' anomaly scores must be out-of-sample — a good training image scored by an anomaly model
 * fitted on it looks better than a new one — so the caller gives the good images' out-of-fold grids, and
 * the head's own thresholds come from out-of-fold heads (crossFit): every image is scored by a head
 * trained without it, as kensa train's k-fold calibration does for the anomaly models.
 */
import { Adam, epochRecord, fitTemperature, type EpochRecord, type TrainSettings } from './head.js';

export interface PatchHeadParams {
  /** Per-channel mean and spread of the training good images' patch embeddings. */
  mean: Float32Array;
  std: Float32Array;
  weight: Float32Array;
  /** Each anomaly patch score's mean, spread (training good patches) and weight, one per score. */
  scoreMean: number[];
  scoreStd: number[];
  scoreWeight: number[];
  bias: number;
  temperature: number;
}

/** One image: its patch rows [cells, C] (the patch embedding) and its anomaly patch scores, each [cells]. */
export interface PatchExample {
  rows: Float32Array;
  scores: readonly Float32Array[];
  label: 0 | 1;
}

const sigmoid = (z: number) => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

/** The head folded for scoring: l(p) = u · x(p) + Σ_j v_j · s_j(p) + c. */
export interface FoldedHead {
  u: Float32Array;
  v: number[];
  c: number;
}

export function foldHead(p: PatchHeadParams): FoldedHead {
  const C = p.weight.length;
  const u = new Float32Array(C);
  let c = p.bias;
  p.scoreWeight.forEach((a, j) => (c -= (a * p.scoreMean[j]) / p.scoreStd[j]));
  for (let k = 0; k < C; k++) {
    u[k] = p.weight[k] / p.std[k];
    c -= (p.weight[k] * p.mean[k]) / p.std[k];
  }
  return { u, v: p.scoreWeight.map((a, j) => a / p.scoreStd[j]), c };
}

/** The raw logit l(p) of each of an image's patches (before the temperature). */
export function patchLogits(
  head: FoldedHead,
  rows: Float32Array,
  scores: readonly Float32Array[],
  from = 0,
  cells = scores[0].length,
): Float64Array {
  const { u, v, c } = head;
  const C = u.length;
  const out = new Float64Array(cells);
  for (let p = 0; p < cells; p++) {
    let z = c;
    for (let j = 0; j < v.length; j++) z += v[j] * scores[j][from + p];
    const at = (from + p) * C;
    for (let k = 0; k < C; k++) z += u[k] * rows[at + k];
    out[p] = z;
  }
  return out;
}

/** The image's raw logit (its top patch's) and which patch that is. */
export function imageLogit(head: FoldedHead, e: PatchExample): { logit: number; top: number } {
  const l = patchLogits(head, e.rows, e.scores);
  let top = 0;
  for (let p = 1; p < l.length; p++) if (l[p] > l[top]) top = p;
  return { logit: l[top], top };
}

export const probabilityOf = (p: Pick<PatchHeadParams, 'temperature'>, logit: number) =>
  sigmoid(logit / p.temperature);

/** Per-channel mean and spread of the good examples' patch rows, and each anomaly score's (float64 sums). */
function standardizer(examples: readonly PatchExample[], C: number, S: number) {
  const sum = new Float64Array(C);
  const sq = new Float64Array(C);
  let n = 0;
  const s1 = new Float64Array(S);
  const s2 = new Float64Array(S);
  for (const e of examples) {
    if (e.label !== 0) continue;
    const cells = e.scores[0].length;
    for (let p = 0; p < cells; p++) {
      for (let k = 0; k < C; k++) {
        const x = e.rows[p * C + k];
        sum[k] += x;
        sq[k] += x * x;
      }
      for (let j = 0; j < S; j++) {
        s1[j] += e.scores[j][p];
        s2[j] += e.scores[j][p] ** 2;
      }
    }
    n += cells;
  }
  const spread = (s: number, m: number) => Math.max(Math.sqrt(Math.max(s / n - m ** 2, 0)), 1e-6);
  const mean = Float32Array.from(sum, (s) => s / n);
  const std = Float32Array.from(sq, (s, k) => spread(s, mean[k]));
  const scoreMean = Array.from(s1, (s) => s / n);
  const scoreStd = Array.from(s2, (s, j) => spread(s, scoreMean[j]));
  return { mean, std, scoreMean, scoreStd };
}

export interface PatchTraining {
  params: PatchHeadParams;
  history: EpochRecord[];
  bestEpoch: number;
}

/**
 * Trains the head on `train` (Adam, full batch, class-balanced loss, L2 on w). With validation examples
 * it stops `patience` epochs after the best validation loss and keeps that epoch's weights; without, it
 * trains `settings.epochs` epochs. The bias starts where the typical good training image has the log-odds
 * of the training classes' prior, log(NG / good), so that the head starts from the anomaly model's
 * ranking with a prior that an image is good.
 */
export function trainPatchHead(
  train: readonly PatchExample[],
  validation: readonly PatchExample[],
  settings: TrainSettings,
  onEpoch?: (r: EpochRecord) => void,
): PatchTraining {
  const S = train[0].scores.length;
  const C = train[0].rows.length / train[0].scores[0].length;
  const std0 = standardizer(train, C, S);
  const params: PatchHeadParams = {
    ...std0,
    weight: new Float32Array(C),
    scoreWeight: new Array<number>(S).fill(1),
    bias: 0,
    temperature: 1,
  };
  const labels = train.map((e) => e.label);
  const nNg = labels.filter((l) => l === 1).length;
  const nGood = labels.length - nNg;
  {
    const f = foldHead(params);
    const typical =
      train.filter((e) => e.label === 0).reduce((s, e) => s + imageLogit(f, e).logit, 0) / nGood;
    params.bias = Math.log(nNg / nGood) - typical;
  }
  // the weights w, then the anomaly scores' weights a_j, then the bias
  const theta = new Float64Array(C + S + 1);
  theta.set(params.scoreWeight, C);
  theta[C + S] = params.bias;
  const adam = new Adam(C + S + 1, settings.learningRate);
  const current = (): PatchHeadParams => ({
    ...params,
    weight: Float32Array.from(theta.subarray(0, C)),
    scoreWeight: Array.from(theta.subarray(C, C + S)),
    bias: theta[C + S],
  });
  // class weights that give both classes the same total weight (as head.ts's balanced loss)
  const cw = [labels.length / (2 * nGood), labels.length / (2 * nNg)];
  const history: EpochRecord[] = [];
  let best = { loss: Infinity, params: current(), epoch: 0 };
  let since = 0;
  for (let epoch = 1; epoch <= settings.epochs; epoch++) {
    const f = foldHead(current());
    const grad = new Float64Array(C + S + 1);
    const zs: number[] = [];
    train.forEach((e, i) => {
      const { logit, top } = imageLogit(f, e);
      zs.push(logit);
      const g = (cw[labels[i]] * (sigmoid(logit) - labels[i])) / train.length;
      for (let k = 0; k < C; k++) grad[k] += (g * (e.rows[top * C + k] - params.mean[k])) / params.std[k];
      for (let j = 0; j < S; j++)
        grad[C + j] += (g * (e.scores[j][top] - params.scoreMean[j])) / params.scoreStd[j];
      grad[C + S] += g;
    });
    for (let k = 0; k < C; k++) grad[k] += settings.weightDecay * theta[k];
    adam.step(theta, grad, epoch);
    const fv = foldHead(current());
    const record = epochRecord(
      epoch,
      { logits: zs, labels },
      { logits: validation.map((e) => imageLogit(fv, e).logit), labels: validation.map((e) => e.label) },
    );
    history.push(record);
    onEpoch?.(record);
    const watched = record.val_loss ?? record.train_loss;
    if (watched < best.loss - 1e-6) {
      best = { loss: watched, params: current(), epoch };
      since = 0;
    } else if (validation.length && ++since >= settings.patience) break;
  }
  // without validation examples: the weights after the last epoch
  if (!validation.length) return { params: current(), history, bestEpoch: history.length };
  return { params: best.params, history, bestEpoch: best.epoch };
}

export interface CrossFit extends PatchTraining {
  /** Each example's raw logit from the head trained without its fold (out-of-fold). */
  outOfFold: number[];
  /** Each fold's best epoch. */
  foldEpochs: number[];
}

/**
 * K-fold cross-fitting. First each fold's head is trained on the other folds and stopped early on this
 * fold's loss; the median of their best epochs is the number of epochs for what follows, so that every
 * head below has the same schedule and its logits the same scale. Then, for each fold, a head trained on
 * the other folds for that many epochs scores this fold's examples (the out-of-fold logits), and the final
 * head is trained on every example for as many; its temperature is fitted on the out-of-fold logits.
 * `folds[i]` is example i's fold.
 */
export function crossFit(
  examples: readonly PatchExample[],
  folds: ArrayLike<number>,
  K: number,
  settings: TrainSettings,
  onStep?: (done: number) => void,
  onEpoch?: (r: EpochRecord) => void,
): CrossFit {
  const parts = Array.from({ length: K }, (_, f) => ({
    train: examples.filter((_, i) => folds[i] !== f),
    held: examples.filter((_, i) => folds[i] === f),
  })).filter(
    (p) => p.held.length && p.train.some((e) => e.label === 1) && p.train.some((e) => e.label === 0),
  );
  const foldEpochs = parts.map((p) => Math.max(1, trainPatchHead(p.train, p.held, settings).bestEpoch));
  onStep?.(1);
  const sorted = [...foldEpochs].sort((x, y) => x - y);
  const epochs = sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : settings.epochs;
  const fixed = { ...settings, epochs };
  const outOfFold = new Array<number>(examples.length).fill(NaN);
  for (let f = 0; f < K; f++) {
    const train = examples.filter((_, i) => folds[i] !== f);
    if (train.length === examples.length) continue;
    const hasBoth = train.some((e) => e.label === 1) && train.some((e) => e.label === 0);
    // a fold whose complement lacks a class (fewer NG images than folds) is scored by the anomaly model's
    // start: the head with w = 0 (trainPatchHead for 0 epochs)
    const head = foldHead(
      trainPatchHead(hasBoth ? train : examples, [], hasBoth ? fixed : { ...fixed, epochs: 0 }).params,
    );
    examples.forEach((e, i) => {
      if (folds[i] === f) outOfFold[i] = imageLogit(head, e).logit;
    });
  }
  onStep?.(2);
  const final = trainPatchHead(examples, [], fixed, onEpoch);
  final.params.temperature = fitTemperature(
    outOfFold,
    examples.map((e) => e.label),
  );
  return { ...final, outOfFold, foldEpochs };
}
