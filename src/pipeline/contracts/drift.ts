/**
 * Drift: whether the images being inspected still look like the good images the threshold was calibrated
 * on. A zero-false-alarm threshold promises nothing for good parts unlike those (another board, a lamp
 * that dimmed, a lens out of focus); their scores rise long before they cross it.
 *
 * The test: the level L is the m-th highest calibration score, m = ⌈n/10⌉ (about the 90th percentile).
 * If new good images are like the calibration images (exchangeable with them), the number K of N new
 * scores above L follows a beta-binomial distribution, BetaBinomial(N, m, n − m + 1) — exact for any n,
 * where a plain binomial would forget that L itself is an estimate from n images. Drift is said when
 * P(K ≥ k) falls below 1e-4 (so that a line inspecting thousands of images a day is not warned by
 * chance), with the numbers: k of N above L where about N·m/(n + 1) were expected, and the median score
 * of the window against the calibration median.
 *
 * Which scores count: test uses its good images; predict, watch and serve the images judged OK (an NG
 * image is the defect's business, not drift's). watch and serve judge a rolling window of recent images.
 */
import { quantile } from '../../util/stats.js';
import { tr } from '../../i18n.js';

/** Below this tail probability the window is said to have drifted. */
export const DRIFT_P_VALUE = 1e-4;
/** Fewest scores the test is made on. */
export const DRIFT_MINIMUM = 30;
/** Recent OK images a rolling monitor (watch, serve) judges. */
export const DRIFT_WINDOW = 200;

export interface DriftStatus {
  /** Scores in the window. */
  count: number;
  /** Of them, above the level. */
  above: number;
  /** How many were expected above it: count · m / (n + 1). */
  expected: number;
  /** The level: the m-th highest calibration score. */
  level: number;
  /** P(K ≥ above) if the images were like the calibration images. */
  p_value: number;
  /** Median score of the window / median calibration score. */
  median_ratio: number;
  drifting: boolean;
}

/** log Γ(x), Lanczos (g = 7, 9 terms): 15 digits for x > 0. */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

const logBeta = (a: number, b: number) => logGamma(a) + logGamma(b) - logGamma(a + b);

/** P(K ≥ k) for K ~ BetaBinomial(N, a, b). */
export function betaBinomialTail(k: number, N: number, a: number, b: number): number {
  if (k <= 0) return 1;
  if (k > N) return 0;
  const base = logBeta(a, b);
  let sum = 0;
  for (let j = k; j <= N; j++) {
    const logChoose = logGamma(N + 1) - logGamma(j + 1) - logGamma(N - j + 1);
    sum += Math.exp(logChoose + logBeta(j + a, N - j + b) - base);
  }
  return Math.min(1, sum);
}

/** Judges windows of scores against the calibration scores (the kept ones). */
export class DriftMonitor {
  private readonly level: number;
  private readonly m: number;
  private readonly n: number;
  private readonly median: number;
  private readonly recent: number[] = [];
  /** Of `recent`, how many are above the level (kept as scores come and go). */
  private above = 0;
  private wasDrifting = false;

  /** `window`: the most recent scores judged (Infinity: all of them, as test and predict do). */
  constructor(
    calibration: ArrayLike<number>,
    private readonly window = Infinity,
  ) {
    const sorted = Float64Array.from(calibration).sort((a, b) => b - a);
    this.n = sorted.length;
    this.m = Math.max(1, Math.ceil(this.n / 10));
    this.level = sorted[this.m - 1];
    this.median = quantile(sorted, 0.5);
  }

  /**
   * Adds a score. A rolling monitor (a finite window: watch, serve) judges the window each time and
   * returns its status when it has just started to drift (once per episode); one over a whole run (test,
   * predict) is judged once, by status().
   */
  add(score: number): DriftStatus | undefined {
    this.recent.push(score);
    if (score > this.level) this.above++;
    if (this.recent.length > this.window && this.recent.shift()! > this.level) this.above--;
    if (this.window === Infinity) return undefined;
    const s = this.status();
    const started = s.drifting && !this.wasDrifting;
    this.wasDrifting = s.drifting;
    return started ? s : undefined;
  }

  status(): DriftStatus {
    const count = this.recent.length;
    const above = this.above;
    // the tail is summed only where it can matter: at or above the expected count, with enough scores
    const expected = (count * this.m) / (this.n + 1);
    const p =
      count >= DRIFT_MINIMUM && above > expected
        ? betaBinomialTail(above, count, this.m, this.n - this.m + 1)
        : 1;
    return {
      count,
      above,
      expected,
      level: this.level,
      p_value: p,
      median_ratio: count && this.median > 0 ? quantile(this.recent, 0.5) / this.median : 1,
      drifting: count >= DRIFT_MINIMUM && p < DRIFT_P_VALUE,
    };
  }
}

/** The drift warning, in words, with what to do. `which`: the images judged ("good test images", ...). */
const WHICH_JA: Record<string, string> = {
  'good test images': '良品のテスト画像',
  'images judged OK': 'OK と判定した画像',
  'images judged OK recently': '最近 OK と判定した画像',
};

export function driftMessage(s: DriftStatus, which: string): string {
  return tr(
    `the images inspected no longer look like the good images the threshold was calibrated on: ${s.above} of the ${s.count} ${which} ` +
      `scored above ${s.level.toPrecision(4)} (the calibration's 90th percentile), where about ${s.expected.toFixed(0)} were expected ` +
      `(chance ${s.p_value.toExponential(1)}); their median score is ${s.median_ratio.toFixed(2)}× the calibration median. ` +
      'The zero-false-alarm promise may not hold for them: review recent images (lighting, focus, another part or board), ' +
      'and add good images of today’s parts to the model (kensa update --model MODEL --add FOLDER) or train again',
    `検査した画像が、しきい値を校正した良品画像と違って見えます: ${WHICH_JA[which] ?? which} ${s.count} 枚のうち ${s.above} 枚が ` +
      `${s.level.toPrecision(4)}（校正の 90 パーセンタイル）を超えました。期待されるのは約 ${s.expected.toFixed(0)} 枚です` +
      `（偶然の確率 ${s.p_value.toExponential(1)}）。スコアの中央値は校正の中央値の ${s.median_ratio.toFixed(2)} 倍です。` +
      '誤検出ゼロの約束はこれらの画像には成り立たないかもしれません: 最近の画像（照明、ピント、別の部品や基板）を確認し、' +
      '今日の部品の良品画像をモデルに追加する（kensa update --model MODEL --add フォルダ）か、学習し直してください',
  );
}

/** Share of NG verdicts above which a run of at least DRIFT_MINIMUM images is said to look like another part. */
export const NG_SHARE_WARNING = 0.9;

/**
 * When nearly every image of a run is NG, the images are probably not of the part the model knows
 * (another part, another camera setting) rather than all defective; said with what to check. Undefined
 * otherwise.
 */
export function ngShareMessage(ng: number, count: number): string | undefined {
  if (count < DRIFT_MINIMUM || ng < NG_SHARE_WARNING * count) return undefined;
  return tr(
    `${ng} of the ${count} images are NG: if they are mostly good parts, they are not like the good images the model was trained on ` +
      '(another part, another camera or lighting setting). Check that the right model is in use',
    `${count} 枚のうち ${ng} 枚が NG です。大半が良品なら、モデルが学習した良品画像と似ていません` +
      '（別の部品、別のカメラや照明の設定）。正しいモデルを使っているか確認してください',
  );
}
