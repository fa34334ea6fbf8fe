/** kensa test: evaluate a model on a labelled test set. */
import { basename, join } from 'node:path';
import { tr } from '../i18n.js';
import type { Command } from 'commander';
import { testSummary } from '../pipeline/contracts/calibration.js';
import { test, type TestMetrics } from '../pipeline/verbs/test.js';
import { addOptions } from './options.js';
import { groupWarnings } from '../util/warnings.js';
import { notice, progressReporter } from './progress.js';

const fmt = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));

export function register(program: Command): void {
  const command = program
    .command('test')
    .description(
      tr(
        'score test/good and test/<defect> of an MVTec-layout folder: metrics, curves, predictions and figures',
        'MVTec 形式のフォルダの test/good と test/<欠陥> を採点: 指標、曲線、予測、図',
      ),
    )
    .requiredOption('--model <file>', tr('model file from kensa train', 'kensa train で作ったモデルファイル'))
    .requiredOption(
      '--data <dir>',
      tr(
        'data folder with test/ (and optionally ground_truth/)',
        'test/（と任意で ground_truth/）のあるデータフォルダ',
      ),
    )
    .requiredOption('--out <dir>', tr('results folder', '結果フォルダ'))
    .option(
      '--save-model [file]',
      tr(
        'store the best-F1 threshold (for --threshold f1) in the model file, or in a copy at [file]; only the header is rewritten',
        'F1 最大のしきい値（--threshold f1 用）をモデルファイル、または [file] のコピーに保存。ヘッダーだけを書き換え',
      ),
    )
    .option(
      '--weights <file>',
      tr(
        'backbone weights file (default: the cache, else download)',
        'バックボーンの重みファイル（既定: キャッシュ、なければダウンロード）',
      ),
    )
    .option('--no-figures', tr('skip the per-image figures', '画像ごとの図を作らない'))
    .option(
      '--report',
      tr('also write report.html (open it in a browser)', 'report.html も書き出す（ブラウザで開く）'),
    );
  addOptions(command, ['batch', 'pixelLimit', 'mmPerPixel']).action(async (o) => {
    const progress = progressReporter();
    try {
      const { metrics, model } = await test({
        model: o.model,
        data: o.data,
        out: o.out,
        saveModel: o.saveModel,
        weights: o.weights,
        batch: o.batch,
        pixelLimit: o.pixelLimit,
        mmPerPixel: o.mmPerPixel,
        figures: o.figures,
        report: o.report,
        onProgress: progress,
        onPlan: notice(progress, 'memory'),
      });
      progress.stop();
      const c = metrics.confusion.fpr0;
      console.log(
        tr('results', '結果') +
          `: ${o.out} (metrics.json, predictions.csv, roc.png, pr.png${o.figures ? ', figures/' : ''}${o.report ? ', report.html' : ''})`,
      );
      console.log(
        `  image AUROC ${fmt(metrics.image_auroc)}  pixel AUROC ${fmt(metrics.pixel_auroc)}  AUPRO ${fmt(metrics.aupro)}  AP ${fmt(metrics.image_ap)}  F1-max ${fmt(metrics.image_f1_max)}`,
      );
      console.log(
        tr(
          `  at fpr0 (${metrics.thresholds.fpr0.toFixed(3)}): ${c.tp} NG found, ${c.fn} missed, ${c.fp} false alarms, ${c.tn} OK`,
          `  fpr0（${metrics.thresholds.fpr0.toFixed(3)}）で: NG 検出 ${c.tp}、見逃し ${c.fn}、誤検出 ${c.fp}、OK ${c.tn}`,
        ),
      );
      for (const line of testSummary(
        metrics.confusion,
        model.meta.calibration.scores.count,
        metrics.thresholds.fpr0,
      ))
        console.log(`  ${line}`);
      for (const line of typeLines(metrics)) console.log(`  ${line}`);
      for (const [name, reason] of Object.entries(metrics.undefined_reasons))
        console.log(
          tr(`  ${name}: n/a (${reason})`, `  ${name}: 算出できません（${REASONS_JA[reason] ?? reason}）`),
        );
      for (const w of groupWarnings(metrics.warnings)) process.stderr.write(`warning: ${w}\n`);
      for (const skip of metrics.skipped)
        process.stderr.write(`warning: left out, unreadable: ${skip.error}\n`);
      if (o.saveModel && metrics.thresholds.f1 !== null)
        console.log(
          `  f1 threshold ${metrics.thresholds.f1.toFixed(4)} stored in ${o.saveModel === true ? o.model : o.saveModel}`,
        );
      if (o.report)
        console.log(
          tr(
            `report: ${join(o.out, 'report.html')}  (open it in a browser)`,
            `レポート: ${join(o.out, 'report.html')}（ブラウザで開いてください）`,
          ),
        );
    } finally {
      progress.stop();
    }
  });
}

/** Why a metric is undefined (metrics.json keeps the English words), as the Japanese summary says it. */
export const REASONS_JA: Record<string, string> = {
  'no ground-truth masks': '正解マスクがありません',
  'no defective pixels to measure': '測る欠陥画素がありません',
  'no defect regions in the masks': 'マスクに欠陥領域がありません',
  'no good pixels in the masks': 'マスクに良品の画素がありません',
  'no defective images (or pixels) to measure': '測る不良画像（または画素）がありません',
  'no good images (or pixels) to measure': '測る良品画像（または画素）がありません',
};

/** One line per defect type (and the good images): found at the verdicts' threshold, and which missed. */
export function typeLines(metrics: TestMetrics, shown = 3): string[] {
  const t = metrics.threshold.name;
  return Object.entries(metrics.by_type).map(([type, r]) => {
    const n = r.above[t] ?? 0;
    const files = r.wrong.map((f) => basename(f));
    const list = files.length
      ? `: ${files.slice(0, shown).join(', ')}${files.length > shown ? tr(` and ${files.length - shown} more`, ` ほか ${files.length - shown} 枚`) : ''}`
      : '';
    return type === 'good'
      ? tr(
          `good: ${n} false alarm${n === 1 ? '' : 's'} of ${r.images} at ${t}${list}`,
          `良品: ${t} で ${r.images} 枚中 誤検出 ${n} 枚${list}`,
        )
      : tr(
          `${type}: ${n} of ${r.images} found at ${t}${r.wrong.length ? `, ${r.wrong.length} missed${list}` : ''}`,
          `${type}: ${t} で ${r.images} 枚中 ${n} 枚を検出${r.wrong.length ? `、見逃し ${r.wrong.length} 枚${list}` : ''}`,
        );
  });
}
