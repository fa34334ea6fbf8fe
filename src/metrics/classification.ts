/**
 * Threshold-free and threshold metrics for anomaly scores (label 1 = defective = positive), computed
 * exactly as scikit-learn does: roc_auc_score, average_precision_score, precision_recall_curve.
 * Undefined metrics (one class only) are null with a reason, never NaN.
 */

export interface Metric {
  value: number | null;
  reason?: string;
}

const bothClasses = (pos: number, neg: number): string | undefined =>
  pos === 0
    ? 'no defective images (or pixels) to measure'
    : neg === 0
      ? 'no good images (or pixels) to measure'
      : undefined;

/**
 * ROC AUC as the Mann-Whitney statistic (ties count ½), from separately sorted positive and negative
 * scores: exact, and fast for tens of millions of pixels.
 */
export function auroc(scores: ArrayLike<number>, labels: ArrayLike<number>): Metric {
  let nPos = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i]) nPos++;
  const nNeg = labels.length - nPos;
  const reason = bothClasses(nPos, nNeg);
  if (reason) return { value: null, reason };
  const pos = new Float64Array(nPos);
  const neg = new Float64Array(nNeg);
  for (let i = 0, a = 0, b = 0; i < labels.length; i++) {
    if (labels[i]) pos[a++] = scores[i];
    else neg[b++] = scores[i];
  }
  pos.sort();
  neg.sort();
  return { value: mannWhitney(pos, neg) };
}

/**
 * P(positive > negative) + ½ P(equal) from ascending-sorted positive and negative scores: the ROC AUC,
 * exact, in one merge pass.
 */
export function mannWhitney(pos: ArrayLike<number>, neg: ArrayLike<number>): number {
  const nPos = pos.length;
  const nNeg = neg.length;
  let below = 0;
  let u = 0;
  for (let i = 0; i < nPos;) {
    const v = pos[i];
    let j = i;
    while (j < nPos && pos[j] === v) j++;
    while (below < nNeg && neg[below] < v) below++;
    let equal = 0;
    while (below + equal < nNeg && neg[below + equal] === v) equal++;
    u += (j - i) * (below + equal / 2);
    i = j;
  }
  return u / (nPos * nNeg);
}

export interface CurvePoint {
  threshold: number;
  tp: number;
  fp: number;
}

/** Cumulative counts at each distinct score, from the highest down (predicted positive: score ≥ threshold). */
export function cumulativeCounts(scores: ArrayLike<number>, labels: ArrayLike<number>): CurvePoint[] {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
  const points: CurvePoint[] = [];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < order.length; i++) {
    if (labels[order[i]]) tp++;
    else fp++;
    if (i === order.length - 1 || scores[order[i + 1]] !== scores[order[i]])
      points.push({ threshold: scores[order[i]], tp, fp });
  }
  return points;
}

export function rocCurve(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
): { fpr: number[]; tpr: number[]; thresholds: number[] } {
  const pts = cumulativeCounts(scores, labels);
  const P = pts.length ? pts[pts.length - 1].tp : 0;
  const N = pts.length ? pts[pts.length - 1].fp : 0;
  return {
    fpr: [0, ...pts.map((p) => (N ? p.fp / N : 0))],
    tpr: [0, ...pts.map((p) => (P ? p.tp / P : 0))],
    thresholds: [Infinity, ...pts.map((p) => p.threshold)],
  };
}

/** scikit-learn's average_precision_score: Σ (Rₙ − Rₙ₋₁) Pₙ over distinct thresholds. */
export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number>): Metric {
  const pts = cumulativeCounts(scores, labels);
  const P = pts.length ? pts[pts.length - 1].tp : 0;
  // with one class only, precision is 1 (or 0) everywhere: AP says nothing
  const reason = bothClasses(P, labels.length - P);
  if (reason) return { value: null, reason };
  let ap = 0;
  let prevRecall = 0;
  for (const p of pts) {
    const recall = p.tp / P;
    ap += (recall - prevRecall) * (p.tp / (p.tp + p.fp));
    prevRecall = recall;
  }
  return { value: ap };
}

export function prCurve(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
): { precision: number[]; recall: number[]; thresholds: number[] } {
  const pts = cumulativeCounts(scores, labels);
  const P = pts.length ? pts[pts.length - 1].tp : 0;
  return {
    precision: pts.map((p) => p.tp / (p.tp + p.fp)),
    recall: pts.map((p) => (P ? p.tp / P : 0)),
    thresholds: pts.map((p) => p.threshold),
  };
}

/**
 * The best F1 over all thresholds, and a threshold that reproduces it under kensa's rule "NG when
 * score > threshold": midway between the lowest score called NG and the next lower score.
 */
export function bestF1(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
): { f1: Metric; threshold: number | null } {
  const pts = cumulativeCounts(scores, labels);
  const P = pts.length ? pts[pts.length - 1].tp : 0;
  // with no good image, every threshold below the lowest score has F1 = 1: no threshold is learnt
  const reason = bothClasses(P, labels.length - P);
  if (reason) return { f1: { value: null, reason }, threshold: null };
  let best = -1;
  let at = 0;
  pts.forEach((p, i) => {
    const f1 = (2 * p.tp) / (p.tp + p.fp + P);
    if (f1 > best) [best, at] = [f1, i];
  });
  const lower = at + 1 < pts.length ? pts[at + 1].threshold : pts[at].threshold - 1;
  return { f1: { value: best }, threshold: (pts[at].threshold + lower) / 2 };
}

export interface Confusion {
  threshold: number;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  /** FP / (FP + TN); null without good images. */
  fpr: number | null;
  /** TP / (TP + FN); null without defective images. */
  recall: number | null;
  precision: number | null;
}

/** Counts under "NG when score > threshold". */
export function confusion(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  threshold: number,
): Confusion {
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const ng = scores[i] > threshold;
    if (labels[i]) {
      if (ng) tp++;
      else fn++;
    } else if (ng) fp++;
    else tn++;
  }
  return {
    threshold,
    tp,
    fp,
    tn,
    fn,
    fpr: fp + tn ? fp / (fp + tn) : null,
    recall: tp + fn ? tp / (tp + fn) : null,
    precision: tp + fp ? tp / (tp + fp) : null,
  };
}
