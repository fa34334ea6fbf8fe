/** Turns library progress callbacks into a bar on a terminal, or a line every few seconds otherwise. */
import cliProgress from 'cli-progress';
import type { ProgressCallback, ProgressEvent } from '../util/progress.js';
import { WarningGroups } from '../util/warnings.js';

const mb = (n: number) => (n / 1e6).toFixed(1);

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
  const report = ((e: ProgressEvent) => {
    if (stream.isTTY) {
      if (task !== e.task) {
        bar?.stop();
        task = e.task;
        bar = new cliProgress.SingleBar(
          {
            stream,
            format: `${e.task} [{bar}] {percentage}% | {doneText}/{totalText} | {rate} | ETA {eta_formatted} {detail}`,
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
      });
    } else if (Date.now() - lastLine > 5000 || (e.done === e.total && !e.detail)) {
      lastLine = Date.now();
      stream.write(
        `${e.task}: ${formatValue(e, e.done)}/${formatValue(e, e.total)} ${e.unit === 'bytes' ? '' : e.unit}${e.detail ? ` (${e.detail})` : ''}\n`,
      );
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
export function notice(
  progress: { stop(): void; onStop?(flush: () => void): void },
  label: string,
): (message: string) => void {
  const groups = new WarningGroups();
  progress.onStop?.(() => {
    for (const line of groups.summary()) process.stderr.write(`${label}: ${line}\n`);
  });
  return (message) => {
    if (!groups.add(message)) return;
    progress.stop();
    process.stderr.write(`${label}: ${message}\n`);
  };
}
