/**
 * The calibration: the scores of good images the model has not seen, and the thresholds they give. Shared
 * by train (which makes the scores), kensa threshold (which lists them and leaves images out of them
 * without re-training) and test/predict (which say what the threshold promises).
 *
 *   fpr0       the highest calibration score: no false alarm on any of the n good images scored; that
 *              supports a false-alarm rate below 3/n on new good images (rule of three, 95 % confidence)
 *   quantile   the q-quantile of the scores (numpy's linear interpolation)
 *
 * Every score is kept in the model (the calibration.scores tensor), with its image's path and sha256 in
 * the metadata, so that an odd image that sets fpr0 can be named, shown and left out later.
 */
import { existsSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import type { Confusion } from '../../metrics/classification.js';
import { tr } from '../../i18n.js';
import { OPTIONS } from '../../options.js';
import { KensaError } from '../../util/errors.js';
import { sha256File } from '../../util/hash.js';
import { mean, quantile } from '../../util/stats.js';

/** Good images needed before zero false alarms on them supports a false-alarm rate below 1 % (95 %). */
export const IMAGES_FOR_ONE_PERCENT = 300;
/** Calibration images listed by train and kensa threshold, highest first. */
export const OUTLIERS_SHOWN = 5;

export type CalibrationMode = 'loo' | 'kfold' | 'holdout';

export interface CalibrationImage {
  file: string;
  /** The first 16 hex digits of the file's sha256 (matches a moved or renamed copy of it). */
  sha256?: string;
}

export interface Exclusion {
  /** Index into the calibration images. */
  index: number;
  /** When it was left out (ISO 8601). */
  at: string;
}

export interface CalibrationSummary {
  /**
   * 'loo': every good image scored by the model fitted on all the others (leave-one-out, where the method
   * has a closed form: PaDiM); 'kfold': by a model fitted without its fold; 'holdout': held-out images.
   */
  mode: CalibrationMode;
  folds?: number;
  /** The q of the quantile threshold (absent where there is none: a classifier file of format 1). */
  quantile?: number;
  /**
   * The scores' summary; min, median and mean are null where the scores were not kept (a classifier
   * file of format 1 kept only the highest, its fpr0).
   */
  scores: { count: number; min: number | null; median: number | null; mean: number | null; max: number };
  /** The good image whose score is fpr0, and the one below it (the margin between them). */
  highest?: { file: string; score: number };
  next?: { file: string; score: number };
  /**
   * What zero false alarms on `count` good images supports: with 95 % confidence the false-alarm rate on
   * new good images is below this (rule of three, 3 / count).
   */
  false_alarm_bound_95: number;
  /** Display range of heat maps: a typical good-pixel level and 1.5× the fpr0 threshold. */
  display: [number, number];
  /**
   * 'odds' where the scores are probabilities (a classifier): how far one image stands above the next is
   * measured in odds, p / (1 − p), because probabilities crowd below 1 (0.9998 is 0.5 % above 0.9943 but
   * has 29 times its odds). Absent: in the scores themselves.
   */
  scale?: 'odds';
  /** The calibration images, in the order of the calibration.scores tensor (absent in older models). */
  images?: CalibrationImage[];
  /** Images left out of the thresholds (kensa threshold --exclude), and when. */
  excluded?: Exclusion[];
}

/** The calibration scores without the excluded images (what the thresholds rest on). */
export function keptScores(scores: ArrayLike<number>, c: Pick<CalibrationSummary, 'excluded'>): number[] {
  const out = new Set((c.excluded ?? []).map((e) => e.index));
  return Array.from(scores).filter((_, i) => !out.has(i));
}

/** The thresholds and the summary of calibration scores, without the excluded images. */
export function summarize(
  scores: ArrayLike<number>,
  base: Pick<CalibrationSummary, 'mode' | 'folds' | 'display' | 'images' | 'scale'> & {
    quantile: number;
    excluded?: Exclusion[];
  },
): { calibration: CalibrationSummary; thresholds: { fpr0: number; quantile: number } } {
  const out = new Set((base.excluded ?? []).map((e) => e.index));
  const kept: { score: number; index: number }[] = [];
  for (let i = 0; i < scores.length; i++) if (!out.has(i)) kept.push({ score: scores[i], index: i });
  const values = kept.map((k) => k.score);
  const ranked = [...kept].sort((a, b) => b.score - a.score);
  const fileOf = (index: number) => base.images?.[index]?.file ?? `calibration image ${index + 1}`;
  const calibration: CalibrationSummary = {
    mode: base.mode,
    ...(base.folds !== undefined ? { folds: base.folds } : {}),
    quantile: base.quantile,
    scores: {
      count: values.length,
      min: Math.min(...values),
      median: quantile(values, 0.5),
      mean: mean(values),
      max: ranked[0].score,
    },
    highest: { file: fileOf(ranked[0].index), score: ranked[0].score },
    ...(ranked[1] ? { next: { file: fileOf(ranked[1].index), score: ranked[1].score } } : {}),
    false_alarm_bound_95: Math.min(1, 3 / values.length),
    display: base.display,
    ...(base.scale ? { scale: base.scale } : {}),
    ...(base.images ? { images: base.images } : {}),
    ...(base.excluded?.length ? { excluded: base.excluded } : {}),
  };
  return { calibration, thresholds: { fpr0: ranked[0].score, quantile: quantile(values, base.quantile) } };
}

export interface RankedImage {
  index: number;
  file: string;
  score: number;
  /** How far it stands above the next kept image: score / next − 1 (in odds where the scale is odds). */
  above: number | null;
  /** What `above` compares: the scores, or their odds (probabilities). */
  measure: 'score' | 'odds';
  excluded: boolean;
}

/** The odds of a probability, p / (1 − p), kept finite for a probability of 1 (float32 saturates there). */
const oddsOf = (p: number) => Math.min(p, 1 - 1e-7) / (1 - Math.min(p, 1 - 1e-7));

/** How far `score` stands above `next`: score / next − 1, in odds on the odds scale; null where next ≤ 0. */
export function standsAbove(score: number, next: number, scale?: 'odds'): number | null {
  if (!(next > 0)) return null;
  return scale === 'odds' ? oddsOf(score) / oddsOf(next) - 1 : score / next - 1;
}

/** The highest calibration images (kept ones; excluded ones listed at their place, marked), highest first. */
export function highestCalibration(
  scores: ArrayLike<number>,
  c: Pick<CalibrationSummary, 'images' | 'excluded' | 'scale'>,
  count = OUTLIERS_SHOWN,
): RankedImage[] {
  const out = new Set((c.excluded ?? []).map((e) => e.index));
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
  const kept = order.filter((i) => !out.has(i));
  const rows: RankedImage[] = [];
  // the `count` highest kept images, and the excluded ones among them at their place
  for (let k = 0, shown = 0; k < order.length && shown < count; k++) {
    const index = order[k];
    const excluded = out.has(index);
    const below = excluded ? undefined : kept[shown + 1];
    if (!excluded) shown++;
    rows.push({
      index,
      file: c.images?.[index]?.file ?? `calibration image ${index + 1}`,
      score: scores[index],
      above: below !== undefined ? standsAbove(scores[index], scores[below], c.scale) : null,
      measure: c.scale ?? 'score',
      excluded,
    });
  }
  return rows;
}

/** One line of the highest calibration images: score, path, and how far it stands above the next. */
export function rankedLine(h: RankedImage): string {
  const tail = h.excluded
    ? tr('  (left out with --exclude)', '  （--exclude で除外済み）')
    : h.above !== null
      ? h.measure === 'odds'
        ? tr(
            `  (odds ${(100 * h.above).toFixed(1)} % above the next's)`,
            `  （オッズが次より ${(100 * h.above).toFixed(1)} % 高い）`,
          )
        : tr(
            `  (${(100 * h.above).toFixed(1)} % above the next)`,
            `  （次より ${(100 * h.above).toFixed(1)} % 高い）`,
          )
      : '';
  return `${h.score.toFixed(4).padStart(10)}  ${h.file}${tail}`;
}

/** What fpr0 promises, in words (one line). */
export function promise(n: number, fpr0: number): string {
  const bound = Math.min(1, 3 / n);
  const rate = (100 * bound).toFixed(bound < 0.01 ? 2 : 1);
  return tr(
    `fpr0 ${fpr0.toPrecision(4)}: no false alarm on any of the ${n} good images scored for calibration; ` +
      `on new good images of the same kind that supports a false-alarm rate below ${rate} % (95 % confidence)`,
    `fpr0 ${fpr0.toPrecision(4)}: 校正で採点した良品 ${n} 枚のどれも誤検出しません。` +
      `同じ種類の新しい良品では誤検出率 ${rate} % 未満を意味します（信頼度 95 %）`,
  );
}

/** What the calibration cannot support, in words: too few good images, one image far above the rest. */
export function calibrationWarnings(c: CalibrationSummary): string[] {
  const out: string[] = [];
  const n = c.scores.count;
  if (n < IMAGES_FOR_ONE_PERCENT) {
    const rate = (100 * c.false_alarm_bound_95).toFixed(1);
    out.push(
      tr(
        `${n} good images were scored for calibration: no false alarm on them supports a false-alarm rate below ` +
          `${rate} % on new good images (95 % confidence); about ${IMAGES_FOR_ONE_PERCENT} good images are needed to support below 1 %`,
        `校正で採点した良品は ${n} 枚です。これらで誤検出がなくても、新しい良品での誤検出率は ${rate} % 未満としか言えません（信頼度 95 %）。` +
          `1 % 未満と言うには良品が約 ${IMAGES_FOR_ONE_PERCENT} 枚必要です`,
      ),
    );
  }
  const above = c.highest && c.next ? standsAbove(c.highest.score, c.next.score, c.scale) : null;
  if (c.highest && c.next && above !== null && above > 0.2) {
    const pct = (100 * above).toFixed(0);
    const odds = c.scale === 'odds';
    const [hi, next] = [c.highest, c.next];
    out.push(
      tr(
        `one good image sets the fpr0 threshold ${pct} % above the next${odds ? ' in odds, p / (1 − p)' : ''}: ` +
          `${hi.file} (${hi.score.toPrecision(4)}; next ${next.file}, ${next.score.toPrecision(4)}). ` +
          'Look at it: if it is not a normal good part (a darker cell, a mislabelled part), leave it out without ' +
          `re-training: kensa threshold --model MODEL --exclude ${hi.file}`,
        `良品 1 枚が fpr0 しきい値を次の画像より${odds ? 'オッズ p / (1 − p) で' : ''} ${pct} % 高くしています: ` +
          `${hi.file}（${hi.score.toPrecision(4)}。次は ${next.file}、${next.score.toPrecision(4)}）。` +
          '確認してください: 普通の良品でなければ（暗いセル、ラベルの誤りなど）再学習せずに除けます: ' +
          `kensa threshold --model MODEL --exclude ${hi.file}`,
      ),
    );
  }
  return out;
}

/**
 * The calibration image a user names (kensa threshold --exclude FILE): the same path, else a file with the
 * same content (its sha256: a moved or renamed copy), else the one image whose path ends with what was
 * given. Refuses names that match none or several, saying which.
 */
export async function findCalibrationImage(images: CalibrationImage[], given: string): Promise<number> {
  const path = resolve(given);
  let at = images.findIndex((im) => resolve(im.file) === path);
  if (at >= 0) return at;
  if (existsSync(path)) {
    const hash = (await sha256File(path).catch(() => '')).slice(0, 16);
    at = hash ? images.findIndex((im) => im.sha256 === hash) : -1;
    if (at >= 0) return at;
  }
  const tail = given
    .split(/[\\/]+/)
    .filter(Boolean)
    .join(sep);
  const ends = images
    .map((im, i) => [im, i] as const)
    .filter(([im]) => resolve(im.file).endsWith(sep + tail));
  if (ends.length === 1) return ends[0][1];
  if (ends.length > 1)
    throw new KensaError(
      'E_ARGUMENT',
      `${ends.length} calibration images end with this name (${ends
        .slice(0, 3)
        .map(([im]) => im.file)
        .join(', ')}${ends.length > 3 ? ', ...' : ''}); give more of the path`,
      { file: given },
    );
  throw new KensaError(
    'E_ARGUMENT',
    `not one of the model's ${images.length} calibration images (by path or by content); kensa threshold --model MODEL lists the highest`,
    { file: given },
  );
}

/**
 * The calibration with images left out (`exclude`) or taken back (`include`), by index, and the
 * thresholds fpr0 and quantile recomputed from the stored scores: no re-training.
 */
export function withExclusions(
  scores: ArrayLike<number>,
  c: CalibrationSummary,
  change: { exclude?: number[]; include?: number[] },
  at = new Date().toISOString(),
): { calibration: CalibrationSummary; thresholds: { fpr0: number; quantile: number } } {
  const current = new Map((c.excluded ?? []).map((e) => [e.index, e]));
  for (const i of change.include ?? []) current.delete(i);
  for (const i of change.exclude ?? []) if (!current.has(i)) current.set(i, { index: i, at });
  if (current.size >= scores.length)
    throw new KensaError(
      'E_ARGUMENT',
      'every calibration image would be left out; at least one must remain to set the thresholds',
    );
  const excluded = [...current.values()].sort((a, b) => a.index - b.index);
  return summarize(scores, { ...c, quantile: c.quantile ?? OPTIONS.quantile.default, excluded });
}

/** What the thresholds do on a labelled test set, in words: fpr0's promise and catch, f1's trade. */
export function testSummary(
  c: { fpr0: Confusion; f1?: Confusion },
  calibrationCount: number,
  fpr0: number,
): string[] {
  const lines = [promise(calibrationCount, fpr0)];
  const share = (x: Confusion) => (100 * (x.recall ?? 0)).toFixed(1);
  const caught = (x: Confusion) =>
    x.tp + x.fn
      ? tr(
          `finds ${x.tp} of the ${x.tp + x.fn} defective images (${share(x)} %)`,
          `不良品 ${x.tp + x.fn} 枚のうち ${x.tp} 枚を検出（${share(x)} %）`,
        )
      : tr('has no defective image to find here', 'ここには検出すべき不良品がありません');
  const alarms = (x: Confusion) =>
    x.fp + x.tn
      ? tr(
          `${x.fp} false alarm${x.fp === 1 ? '' : 's'} on the ${x.fp + x.tn} good images`,
          `良品 ${x.fp + x.tn} 枚で誤検出 ${x.fp} 枚`,
        )
      : tr('no good image here', 'ここに良品はありません');
  lines.push(
    tr(
      `on this test set fpr0 ${caught(c.fpr0)}, with ${alarms(c.fpr0)}`,
      `このテストセットで fpr0 は${caught(c.fpr0)}、${alarms(c.fpr0)}`,
    ),
  );
  if (c.f1)
    lines.push(
      tr(
        `f1 (${c.f1.threshold.toPrecision(4)}, best F1 here) would ${caught(c.f1).replace(/^finds/, 'find')}, with ${alarms(c.f1)}; ` +
          'to use it: kensa test --save-model, then kensa predict --threshold f1',
        `f1（${c.f1.threshold.toPrecision(4)}、ここで F1 最大）なら${caught(c.f1)}、${alarms(c.f1)}。` +
          '使うには: kensa test --save-model のあと kensa predict --threshold f1',
      ),
    );
  return lines;
}
