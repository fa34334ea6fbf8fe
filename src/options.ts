/**
 * One description of each option: its command-line flag, its kind and range (or choices), its default and
 * its help in English and Japanese. The command line's parsers and help (cli/options.ts) and the library's
 * checks (checkOption, checkOptions) are both made from this table, so a range is written once and both
 * say the same thing: "Expected an integer between 1 and 4096 for --batch but received '0'" on the
 * command line, "… for batch but received 0 of type number" from the library.
 */
import { describe, KensaError } from './util/errors.js';

export interface NumberSpec {
  kind: 'integer' | 'number';
  flag: string;
  /** The value's name in help texts: --batch <n>. */
  value: string;
  min: number;
  max: number;
  /** Bounds that are not allowed themselves: (0, 1) rather than [0, 1]. */
  open?: { min?: boolean; max?: boolean };
  default?: number;
  help: { en: string; ja: string };
}

export type OptionSpec = NumberSpec;

const help = (en: string, ja: string) => ({ en, ja });

/** Every numeric option kensa takes, by the name the library uses. */
export const OPTIONS = {
  batch: {
    kind: 'integer',
    flag: '--batch',
    value: '<n>',
    min: 1,
    max: 4096,
    help: help(
      'most network inputs per backbone batch (default 16 while fitting, 32 when scoring; fewer for large inputs)',
      'バックボーンの 1 バッチの最大入力数（既定: 学習時 16、採点時 32。大きな入力では少なく）',
    ),
  },
  pixelLimit: {
    kind: 'integer',
    flag: '--pixel-limit',
    value: '<n>',
    // at least 1: a limit of 0 would switch libvips' guard off
    min: 1,
    max: 2 ** 32,
    help: help(
      'refuse images with more pixels than this (decompression bombs), before decoding them',
      'これより画素数の多い画像をデコード前に拒否（解凍爆弾対策）',
    ),
  },
  seed: {
    kind: 'integer',
    flag: '--seed',
    value: '<n>',
    min: 0,
    max: 2 ** 32 - 1,
    default: 0,
    help: help(
      'seed for every random choice (the same seed, the same result)',
      'すべての乱数の種（同じ種なら同じ結果）',
    ),
  },
  folds: {
    kind: 'integer',
    flag: '--folds',
    value: '<k>',
    min: 2,
    max: 100,
    help: help(
      "calibrate on out-of-fold scores of every good image, k folds (default: leave-one-out where the method has it in closed form, PaDiM; else 5 folds, the ensemble's PaDiM member by leave-one-out)",
      'k 分割の分割外スコアで校正（既定: 閉形式のある手法（PaDiM）は 1 枚ずつ除外、ほかは 5 分割。ensemble の PaDiM 部分は 1 枚ずつ除外）',
    ),
  },
  valFraction: {
    kind: 'number',
    flag: '--val-fraction',
    value: '<f>',
    min: 0,
    max: 1,
    open: { min: true, max: true },
    help: help(
      'calibrate on a held-out share of the good images instead of folds',
      '分割の代わりに良品の一部を取り分けて校正する割合',
    ),
  },
  quantile: {
    kind: 'number',
    flag: '--quantile',
    value: '<q>',
    min: 0,
    max: 1,
    open: { min: true },
    default: 0.99,
    help: help(
      "calibration-score quantile used by '--threshold quantile'",
      "'--threshold quantile' が使う校正スコアの分位点",
    ),
  },
  coreset: {
    kind: 'number',
    flag: '--coreset',
    value: '<f>',
    min: 0,
    max: 1,
    open: { min: true },
    help: help(
      'patchcore, ensemble: share of the training patches kept in the memory bank (default 0.1, at most 128 rows per training image)',
      'patchcore、ensemble: メモリバンクに残す学習パッチの割合（既定 0.1。ただし学習画像 1 枚あたり 128 行まで）',
    ),
  },
  neighbors: {
    kind: 'integer',
    flag: '--neighbors',
    value: '<k>',
    min: 1,
    max: 64,
    help: help(
      "patchcore, ensemble: bank rows of the image score's re-weighting (default 9, as anomalib; 1 = the largest patch distance)",
      'patchcore、ensemble: 画像スコアの再重み付けに使うバンクの行数（既定 9、anomalib と同じ。1 = パッチ距離の最大値）',
    ),
  },
  d: {
    kind: 'integer',
    flag: '--d',
    value: '<n>',
    min: 1,
    max: 4096,
    help: help(
      'padim, ensemble: channels kept (default: 100 for resnet18, 550 for wide_resnet50_2, all for EfficientNet-Lite)',
      'padim、ensemble: 使うチャンネル数（既定: resnet18 は 100、wide_resnet50_2 は 550、EfficientNet-Lite はすべて）',
    ),
  },
  size: {
    kind: 'integer',
    flag: '--size',
    value: '<n>',
    min: 32,
    max: 8192,
    help: help(
      'process at about n×n pixels, aspect ratio kept (default 224; a multiple of 16)',
      '縦横比を保って約 n×n 画素で処理（既定 224、16 の倍数）',
    ),
  },
  resize: {
    kind: 'integer',
    flag: '--resize',
    value: '<n>',
    min: 32,
    max: 8192,
    help: help(
      'resize the shorter side to n, then centre-crop (with --crop)',
      '短辺を n に縮小してから中央を切り出す（--crop と一緒に）',
    ),
  },
  crop: {
    kind: 'integer',
    flag: '--crop',
    value: '<n>',
    min: 32,
    max: 8192,
    help: help(
      'centre crop size after --resize (a multiple of 16)',
      '--resize の後に切り出す中央の大きさ（16 の倍数）',
    ),
  },
  scale: {
    kind: 'number',
    flag: '--scale',
    value: '<f>',
    min: 1 / 64,
    max: 4,
    help: help('process at f × the native resolution (e.g. 0.5)', '元の解像度の f 倍で処理（例 0.5）'),
  },
  tile: {
    kind: 'integer',
    flag: '--tile',
    value: '<n>',
    min: 32,
    max: 4096,
    help: help(
      'cut the processed image into n×n tiles (a multiple of 16); native resolution unless --scale or --size',
      '処理後の画像を n×n のタイルに分ける（16 の倍数）。--scale も --size もなければ元の解像度',
    ),
  },
  overlap: {
    kind: 'integer',
    flag: '--overlap',
    value: '<n>',
    min: 0,
    max: 4080,
    help: help(
      'least overlap of neighbouring tiles in pixels (default 96; a multiple of 16)',
      '隣のタイルとの最小の重なり（画素、既定 96、16 の倍数）',
    ),
  },
  port: {
    kind: 'integer',
    flag: '--port',
    value: '<n>',
    min: 0,
    max: 65535,
    default: 8080,
    help: help('port (0: any free port)', 'ポート（0: 空いている任意のポート）'),
  },
  maxBatch: {
    kind: 'integer',
    flag: '--max-batch',
    value: '<n>',
    min: 1,
    max: 256,
    default: 8,
    help: help('most images per backbone batch', 'バックボーンの 1 バッチの最大画像数'),
  },
  maxWaitMs: {
    kind: 'integer',
    flag: '--max-wait-ms',
    value: '<ms>',
    min: 0,
    max: 10_000,
    default: 5,
    help: help(
      'longest an image waits for others to fill its batch',
      '画像がバッチを満たすほかの画像を待つ最長時間',
    ),
  },
  queueLimit: {
    kind: 'integer',
    flag: '--queue',
    value: '<n>',
    min: 1,
    max: 100_000,
    default: 64,
    help: help(
      'most images waiting; more are answered 503 with Retry-After',
      '待ち画像の上限。超えると 503 と Retry-After',
    ),
  },
  bodyLimitMb: {
    kind: 'integer',
    flag: '--max-body-mb',
    value: '<n>',
    min: 1,
    max: 4096,
    default: 64,
    help: help('largest request body (413 above)', 'リクエスト本文の上限（超えると 413）'),
  },
  receivingMb: {
    kind: 'integer',
    flag: '--max-receiving-mb',
    value: '<n>',
    min: 1,
    max: 65536,
    default: 256,
    help: help(
      'most megabytes of request bodies received at once, all clients together (503 with Retry-After above)',
      '全クライアント合計で同時に受信する本文の上限（MB。超えると 503 と Retry-After）',
    ),
  },
  timeoutMs: {
    kind: 'integer',
    flag: '--timeout-ms',
    value: '<ms>',
    min: 100,
    max: 3_600_000,
    default: 30_000,
    help: help(
      'time limit of a request, receiving and scoring (408 while receiving, 504 while scoring)',
      'リクエストの制限時間（受信中は 408、採点中は 504）',
    ),
  },
  tritonMaxBatch: {
    kind: 'integer',
    flag: '--max-batch',
    value: '<n>',
    min: 1,
    max: 1024,
    default: 8,
    help: help('triton: the largest batch the server forms', 'triton: サーバーが作る最大のバッチ'),
  },
  maxQueueDelayMs: {
    kind: 'integer',
    flag: '--max-queue-delay-ms',
    value: '<ms>',
    min: 0,
    max: 10_000,
    default: 5,
    help: help(
      'triton: longest a request waits for others to fill a batch',
      'triton: リクエストがバッチを満たすのを待つ最長時間',
    ),
  },
  copies: {
    kind: 'integer',
    flag: '--copies',
    value: '<n>',
    min: 0,
    max: 64,
    default: 4,
    help: help(
      '--head image: augmented copies of each training image (default 4)',
      '--head image: 学習画像 1 枚あたりの拡張コピー数（既定 4）',
    ),
  },
  epochs: {
    kind: 'integer',
    flag: '--epochs',
    value: '<n>',
    min: 1,
    max: 100_000,
    default: 300,
    help: help('most training epochs (default 300)', '学習の最大エポック数（既定 300）'),
  },
  patience: {
    kind: 'integer',
    flag: '--patience',
    value: '<n>',
    min: 1,
    max: 100_000,
    default: 40,
    help: help(
      'epochs without a better validation loss before stopping (default 40)',
      '検証の損失が改善しないまま止めるまでのエポック数（既定 40）',
    ),
  },
  classifierFolds: {
    kind: 'integer',
    flag: '--folds',
    value: '<k>',
    min: 2,
    max: 100,
    default: 5,
    help: help(
      'patch head: folds of the cross-fitting; every image is scored by a model trained without its fold (default 5)',
      'パッチヘッド: 交差学習の分割数。各画像を、その分割を除いて学習したモデルで採点（既定 5）',
    ),
  },
  classifierValFraction: {
    kind: 'number',
    flag: '--val-fraction',
    value: '<f>',
    min: 0,
    max: 1,
    open: { min: true, max: true },
    default: 0.2,
    help: help(
      '--head image: share of each class held out for validation (default 0.2)',
      '--head image: 各クラスから検証に取り分ける割合（既定 0.2）',
    ),
  },
  mmPerPixel: {
    kind: 'number',
    flag: '--mm-per-pixel',
    value: '<mm>',
    min: 0,
    max: 1000,
    open: { min: true },
    help: help(
      'millimetres per pixel of the original images: regions get width_mm, height_mm and area_mm2 (train stores it in the model; predict, test and serve may override it)',
      '元画像の 1 画素あたりのミリメートル: 領域に width_mm・height_mm・area_mm2 を付ける（train はモデルに保存、predict・test・serve で上書き可）',
    ),
  },
  minDefectMm: {
    kind: 'number',
    flag: '--min-defect-mm',
    value: '<mm>',
    min: 0,
    max: 1e6,
    help: help(
      'a region whose longer side is below this many millimetres does not count towards NG (it is still listed, counts = no); needs the pixel size',
      '長辺がこのミリメートル未満の領域は NG に数えない（一覧には counts = no で残る）。画素の大きさが必要',
    ),
  },
  overlayOpacity: {
    kind: 'number',
    flag: '--overlay-opacity',
    value: '<f>',
    min: 0,
    max: 1,
    default: 0.5,
    help: help(
      'how strongly the heat map covers the photograph in overlays, 0 (the photograph alone, boxes only) to 1 (default 0.5)',
      'オーバーレイでヒートマップが写真を覆う強さ。0（写真と枠だけ）〜 1（既定 0.5）',
    ),
  },
  intervalMs: {
    kind: 'integer',
    flag: '--interval-ms',
    value: '<ms>',
    min: 50,
    max: 3_600_000,
    default: 1000,
    help: help(
      'how often the drop folder is looked at (default 1000 ms)',
      'ドロップフォルダを見る間隔（既定 1000 ms）',
    ),
  },
  settleMs: {
    kind: 'integer',
    flag: '--settle-ms',
    value: '<ms>',
    min: 0,
    max: 3_600_000,
    default: 1000,
    help: help(
      'a new file is inspected once its size and time have not changed for this long (default 1000 ms): a camera still writing it is waited for',
      '新しいファイルは、大きさと時刻がこの時間変わらなくなってから検査（既定 1000 ms）。書き込み中のファイルを待ちます',
    ),
  },
} satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

/** What a value of the option must be, in words: "an integer between 1 and 4096", "a number in (0, 1]". */
export function expectation(spec: OptionSpec): string {
  const { min, max, open } = spec;
  if (spec.kind === 'integer') return `an integer between ${min} and ${max}`;
  if (open?.min || open?.max)
    return `a number in ${open.min ? '(' : '['}${min}, ${max}${open.max ? ')' : ']'}`;
  return `a number between ${min} and ${max}`;
}

/** Whether a number fits the option. */
export function fits(spec: OptionSpec, n: number): boolean {
  if (!Number.isFinite(n)) return false;
  if (spec.kind === 'integer' && !Number.isInteger(n)) return false;
  if (spec.open?.min ? n <= spec.min : n < spec.min) return false;
  if (spec.open?.max ? n >= spec.max : n > spec.max) return false;
  return true;
}

/** The refusal of a value, worded once: "Expected <what> for <name> but received <value>". */
export function optionError(spec: OptionSpec, name: string, received: string): KensaError {
  return new KensaError('E_ARGUMENT', `Expected ${expectation(spec)} for ${name} but received ${received}`);
}

/**
 * Checks one library option (undefined: not given); the message names the option as the library does
 * (`as`: its name in the call, where the table's differs, e.g. export's maxBatch).
 */
export function checkOption(name: OptionName, value: unknown, as: string = name): void {
  if (value === undefined) return;
  const spec: OptionSpec = OPTIONS[name];
  if (typeof value !== 'number' || !fits(spec, value)) throw optionError(spec, as, describe(value));
}

/** Checks the named options of a library call, before any work. */
export function checkOptions(options: object, names: readonly OptionName[]): void {
  for (const name of names) checkOption(name, (options as Record<string, unknown>)[name]);
}
