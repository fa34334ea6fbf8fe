/** kensa update: add new good images to a model without training it again from scratch, and recalibrate. */
import type { Command } from 'commander';
import { tr } from '../i18n.js';
import { highestCalibration, promise, rankedLine } from '../pipeline/contracts/calibration.js';
import { methodMeta, modelFileSize } from '../pipeline/contracts/model-file.js';
import { update } from '../pipeline/verbs/update.js';
import { addOptions } from './options.js';
import { methodDetail } from './train.js';
import { notice, progressReporter } from './progress.js';

export function register(program: Command): void {
  const command = program
    .command('update')
    .description(
      tr(
        'add new good images (e.g. false alarms reviewed as good parts) to a model fitted on good images (ensemble, patchcore or padim) without training it again, and recalibrate its thresholds',
        '新しい良品画像（見直しで良品とした誤検出など）を、再学習せずに良品で学習したモデル（ensemble・patchcore・padim）へ追加し、しきい値を校正し直す',
      ),
    )
    .requiredOption('--model <file>', tr('model file to update', '更新するモデルファイル'))
    .requiredOption(
      '--add <images...>',
      tr(
        "the new good images: image files, folders (or a data set's train/good), quoted globs, or the report's review list (review.txt: its 'good' lines)",
        "新しい良品画像: 画像ファイル、フォルダ（またはデータセットの train/good）、引用符で囲んだパターン、またはレポートの見直し一覧（review.txt の 'good' の行）",
      ),
    )
    .option(
      '--out <model>',
      tr(
        'write the updated model here (default: replace --model, keeping the old one as NAME.previous.kensa)',
        '更新したモデルの書き出し先（既定: --model を置き換え、元のものを NAME.previous.kensa として残す）',
      ),
    )
    .option(
      '--force',
      tr('replace the --out file if one is already there', '--out に既にあるファイルを置き換える'),
    )
    .option(
      '--weights <file>',
      tr(
        'backbone weights file (default: the cache, else download)',
        'バックボーンの重みファイル（既定: キャッシュ、なければダウンロード）',
      ),
    );
  addOptions(command, ['batch', 'pixelLimit']);
  command.action(async (o) => {
    const progress = progressReporter();
    try {
      const r = await update({
        model: o.model,
        add: o.add,
        out: o.out,
        force: o.force,
        weights: o.weights,
        batch: o.batch,
        pixelLimit: o.pixelLimit,
        onProgress: progress,
        onPlan: notice(progress, 'memory'),
        onWarning: notice(progress, 'warning'),
      });
      progress.stop();
      const m = r.model.meta;
      const c = m.calibration;
      const settings = methodMeta(m);
      const mib = ((await modelFileSize(r.out)) / 2 ** 20).toFixed(1);
      console.log(
        tr(`model written: ${r.out} (${mib} MiB)`, `モデルを書き出しました: ${r.out}（${mib} MiB）`),
      );
      if (r.previous)
        console.log(
          tr(
            `  the model before this update is kept as ${r.previous}`,
            `  更新前のモデルは ${r.previous} として残しました`,
          ),
        );
      const n = r.added.length;
      console.log(
        tr(
          `  ${n} good image${n === 1 ? '' : 's'} added (now ${m.training.train_images}; ${r.before.trainImages} before)` +
            (r.alreadyIn.length ? `, ${r.alreadyIn.length} left out as in the model already` : '') +
            (r.skipped.length ? `, ${r.skipped.length} unreadable` : ''),
          `  良品 ${n} 枚を追加（計 ${m.training.train_images} 枚、更新前 ${r.before.trainImages} 枚）` +
            (r.alreadyIn.length ? `。${r.alreadyIn.length} 枚はモデルに既にあるため除外` : '') +
            (r.skipped.length ? `。${r.skipped.length} 枚は読めませんでした` : ''),
        ),
      );
      if (m.method !== 'padim') console.log(`  ${methodDetail(m.method, settings)}`);
      console.log(
        tr(
          `  fpr0 ${r.before.fpr0.toPrecision(4)} → ${m.thresholds.fpr0.toPrecision(4)}; calibrated on ${c.scores.count} good images (${r.before.calibration} before)`,
          `  fpr0 ${r.before.fpr0.toPrecision(4)} → ${m.thresholds.fpr0.toPrecision(4)}。校正は良品 ${c.scores.count} 枚（更新前 ${r.before.calibration} 枚）`,
        ),
      );
      console.log(`  ${promise(c.scores.count, m.thresholds.fpr0)}`);
      console.log(
        tr(
          '  highest calibration scores (the first sets fpr0):',
          '  校正スコアの高い画像（最初のものが fpr0）:',
        ),
      );
      for (const h of highestCalibration(r.model.calibrationScores, c)) console.log(`  ${rankedLine(h)}`);
      console.log(
        tr(`  time ${r.timings_s.total.toFixed(1)} s`, `  時間 ${r.timings_s.total.toFixed(1)} 秒`),
      );
    } finally {
      progress.stop();
    }
  });
}
