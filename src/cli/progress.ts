/** Turns library progress callbacks into a bar on a terminal, or a line every few seconds otherwise. */
import cliProgress from 'cli-progress';
import type { ProgressCallback, ProgressEvent } from '../util/progress.js';
import { language, tr } from '../i18n.js';
import { WarningGroups } from '../util/warnings.js';

const mb = (n: number) => (n / 1e6).toFixed(1);

/**
 * The library's progress task names in the reader's language (they stay English in the library, where
 * callers may match them): the verb, then the step.
 */
const TASKS_JA: [RegExp, string][] = [
  [/^(\w+) \((\w+)\): features$/, '$1 ($2): 特徴の抽出'],
  [/^(\w+): (\w+) model so far$/, '$1: これまでの $2 モデル'],
  [/^(\w+): (\w+) model$/, '$1: $2 モデル'],
  [/^(\w+): fold (\d+)\/(\d+) model$/, '$1: 分割 $2/$3 のモデル'],
  [/^(\w+): leave-one-out model$/, '$1: 1 枚抜きのモデル'],
  [/^(\w+): calibration \(leave-one-out\)$/, '$1: 校正（1 枚抜き）'],
  [/^(\w+): calibration, fold (\d+)\/(\d+)$/, '$1: 校正（分割 $2/$3）'],
  [/^(\w+): calibration \(hold-out\)$/, '$1: 校正（取り分けた画像）'],
  [/^test: score$/, 'test: 採点'],
  [/^classify train: features \(with augmented copies\)$/, 'classify train: 特徴の抽出（拡張コピー込み）'],
  [/^classify train: features$/, 'classify train: 特徴の抽出'],
  [/^classify train: anomaly scores, fold (\d+)\/(\d+)$/, 'classify train: 異常スコア（分割 $1/$2）'],
  [/^classify train: NG images$/, 'classify train: NG 画像'],
  [/^classify train: head$/, 'classify train: ヘッドの学習'],
  [/^download (.+)$/, 'ダウンロード $1'],
];
const VERBS_JA: Record<string, string> = {
  train: '学習',
  update: '更新',
  test: 'テスト',
  predict: '判定',
  score: '採点',
  'classify train': '分類器の学習',
};
const UNITS_JA: Record<string, string> = { images: '枚', steps: 'ステップ', bytes: '' };

/** A progress task's name as the reader reads it (Japanese with --lang ja). */
export function taskText(task: string): string {
  if (language() !== 'ja') return task;
  for (const [pattern, ja] of TASKS_JA)
    if (pattern.test(task)) {
      const text = task.replace(pattern, ja);
      const verb = Object.keys(VERBS_JA)
        .sort((a, b) => b.length - a.length)
        .find((v) => text.startsWith(v));
      return verb ? VERBS_JA[verb] + text.slice(verb.length) : text;
    }
  return VERBS_JA[task] ?? task;
}

const unitText = (unit: string) => (language() === 'ja' ? (UNITS_JA[unit] ?? unit) : unit);

function formatValue(e: ProgressEvent, v: number): string {
  return e.unit === 'bytes' ? `${mb(v)} MB` : String(v);
}

/** A progress callback that draws on stderr; call `stop()` when done. */
export function progressReporter(
  stream: NodeJS.WriteStream = process.stderr,
): ProgressCallback & { stop(): void; onStop(flush: () => void): void } {
  const flushers: (() => void)[] = [];
  let bar: cliProgress.SingleBar | undefined;
  let task = '';
  let lastLine = 0;
  const start = Date.now();
  let runStart: number | undefined;
  /** The whole run's time left, from its image passes so far (after a few seconds, when rates settle). */
  const runLeft = (e: ProgressEvent): string => {
    if (!e.run) return '';
    runStart ??= Date.now();
    const elapsed = (Date.now() - runStart) / 1000;
    if (e.run.done <= 0 || elapsed < 3 || e.run.done >= e.run.total) return '';
    const left = Math.round((elapsed * (e.run.total - e.run.done)) / e.run.done);
    const text = left >= 60 ? `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}` : `${left} s`;
    return tr(` | whole run: about ${text} left`, ` | 全体の残り: 約 ${text}`);
  };
  const report = ((e: ProgressEvent) => {
    if (stream.isTTY) {
      if (task !== e.task) {
        bar?.stop();
        task = e.task;
        bar = new cliProgress.SingleBar(
          {
            stream,
            format: `${taskText(e.task)} [{bar}] {percentage}% | {doneText}/{totalText} | {rate} | ETA {eta_formatted}{run} {detail}`,
            hideCursor: true,
            etaBuffer: 50,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(e.total || 1, 0, {
          doneText: '0',
          totalText: formatValue(e, e.total),
          rate: '',
          detail: '',
          run: '',
        });
      }
      const seconds = (Date.now() - start) / 1000;
      const rate =
        seconds > 0
          ? `${e.unit === 'bytes' ? `${mb(e.done / seconds)} MB` : (e.done / seconds).toFixed(1)}/s`
          : '';
      bar?.setTotal(e.total || 1);
      bar?.update(e.done, {
        doneText: formatValue(e, e.done),
        totalText: formatValue(e, e.total),
        rate,
        detail: e.detail ?? '',
        run: runLeft(e),
      });
    } else {
      const left = runLeft(e);
      if (Date.now() - lastLine > 5000 || (e.done === e.total && !e.detail)) {
        lastLine = Date.now();
        stream.write(
          `${taskText(e.task)}: ${formatValue(e, e.done)}/${formatValue(e, e.total)} ${e.unit === 'bytes' ? '' : unitText(e.unit)}${e.detail ? ` (${e.detail})` : ''}${left}\n`,
        );
      }
    }
  }) as ProgressCallback & { stop(): void; onStop(flush: () => void): void };
  report.stop = () => {
    bar?.stop();
    bar = undefined;
    task = '';
    for (const flush of flushers) flush();
  };
  report.onStop = (flush) => flushers.push(flush);
  return report;
}

/**
 * A notice on stderr (`memory: …`, `warning: …`) that first clears a progress bar. Each kind is said
 * once (the first of its kind); when the progress stops, how many more of each kind there were.
 */
const LABELS_JA: Record<string, string> = { warning: '警告', memory: 'メモリ', note: '注意' };

export function notice(
  progress: { stop(): void; onStop?(flush: () => void): void },
  label: string,
): (message: string) => void {
  const groups = new WarningGroups();
  const shown = LABELS_JA[label] ? tr(label, LABELS_JA[label]) : label;
  progress.onStop?.(() => {
    for (const line of groups.summary()) process.stderr.write(`${shown}: ${line}\n`);
  });
  return (message) => {
    if (!groups.add(message)) return;
    progress.stop();
    process.stderr.write(`${shown}: ${message}\n`);
  };
}
