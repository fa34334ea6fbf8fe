/** kensa predict: inspect new images with a trained model. */
import type { Command } from 'commander';
import { tr } from '../i18n.js';
import { predict } from '../pipeline/verbs/predict.js';
import { join } from 'node:path';
import { addOptions, threshold, thresholdText } from './options.js';
import { notice, progressReporter } from './progress.js';

export function register(program: Command): void {
  const command = program
    .command('predict')
    .description(
      tr(
        'inspect images (files, folders or glob patterns): OK/NG, scores, defect boxes, NG list and heat-map overlays',
        '画像（ファイル、フォルダ、パターン）を検査: OK/NG、スコア、欠陥の枠、NG 一覧、ヒートマップのオーバーレイ',
      ),
    )
    .argument(
      '<images...>',
      tr(
        'image files, folders or glob patterns (quote patterns)',
        '画像ファイル、フォルダ、パターン（パターンは引用符で囲む）',
      ),
    )
    .requiredOption('--model <file>', tr('model file from kensa train', 'kensa train で作ったモデルファイル'))
    .requiredOption('--out <dir>', tr('results folder', '結果フォルダ'))
    .option(
      '--threshold <t>',
      tr(
        'fpr0 (no false alarm on known-good images), f1, quantile, custom (set by kensa threshold), or a number; ' +
          'default: custom when the model has one, else fpr0',
        'fpr0（既知の良品で誤検出ゼロ）、f1、quantile、custom（kensa threshold で保存）、または数値。既定: モデルに custom があればそれ、なければ fpr0',
      ),
      threshold,
    )
    .option(
      '--weights <file>',
      tr(
        'backbone weights file (default: the cache, else download)',
        'バックボーンの重みファイル（既定: キャッシュ、なければダウンロード）',
      ),
    )
    .option('--no-overlays', tr('skip the heat-map overlays', 'ヒートマップのオーバーレイを作らない'))
    .option(
      '--figures',
      tr('also write the five-panel figure of each image', '画像ごとの 5 枚組の図も書き出す'),
    )
    .option(
      '--report',
      tr(
        'also write report.html (open it in a browser; implies --figures)',
        'report.html も書き出す（ブラウザで開く。--figures を含む）',
      ),
    )
    .option(
      '--fail-fast',
      tr(
        'stop at the first unreadable image (default: list it in errors.csv and go on)',
        '読めない画像で止める（既定: errors.csv に記録して続ける）',
      ),
    );
  addOptions(command, ['batch', 'pixelLimit', 'mmPerPixel', 'minDefectMm', 'overlayOpacity']).action(
    async (images: string[], o) => {
      const progress = progressReporter();
      try {
        const {
          predictions,
          errors,
          threshold: t,
        } = await predict({
          model: o.model,
          inputs: images,
          out: o.out,
          threshold: o.threshold,
          weights: o.weights,
          batch: o.batch,
          overlays: o.overlays,
          figures: o.figures,
          report: o.report,
          failFast: o.failFast,
          pixelLimit: o.pixelLimit,
          mmPerPixel: o.mmPerPixel,
          minDefectMm: o.minDefectMm,
          overlayOpacity: o.overlayOpacity,
          onProgress: progress,
          onPlan: notice(progress, 'memory'),
          onWarning: notice(progress, 'warning'),
        });
        progress.stop();
        const ng = predictions.filter((p) => p.verdict === 'NG').length;
        const files = `predictions.csv, regions.csv, predictions.json, ng_list.txt${o.overlays ? ', overlays/' : ''}`;
        console.log(tr(`results: ${o.out} (${files})`, `結果: ${o.out}（${files}）`));
        const n = predictions.length;
        const shown = thresholdText(t);
        console.log(
          tr(
            `  ${n} image${n === 1 ? '' : 's'}: ${ng} NG, ${n - ng} OK (threshold ${shown})`,
            `  ${n} 枚: NG ${ng} 枚、OK ${n - ng} 枚（しきい値 ${shown}）`,
          ),
        );
        if (errors.length) {
          process.stderr.write(
            tr(
              `kensa: ${errors.length} image${errors.length === 1 ? '' : 's'} could not be read; see ${o.out}/errors.csv\n`,
              `kensa: ${errors.length} 枚の画像を読めませんでした。${o.out}/errors.csv を見てください\n`,
            ),
          );
          for (const e of errors.slice(0, 5)) process.stderr.write(`  ${e.error}\n`);
          process.exitCode = 3;
        }
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
    },
  );
}
