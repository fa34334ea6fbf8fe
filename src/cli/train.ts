/** kensa train: fit a model on good images and write the model file. */
import type { Command } from 'commander';
import { tr } from '../i18n.js';
import { backboneNames, DEFAULT_BACKBONE } from '../backbone/registry.js';
import { describePreprocess } from '../image/preprocess.js';
import { UNSUPERVISED_METHODS } from '../models/registry.js';
import { highestCalibration, promise, rankedLine } from '../pipeline/contracts/calibration.js';
import { methodMeta, modelFileSize, type KensaModel } from '../pipeline/contracts/model-file.js';
import { DEFAULT_METHOD, DEFAULT_TILED_METHOD, train } from '../pipeline/verbs/train.js';
import { addOptions, preprocessFrom } from './options.js';
import { notice, progressReporter } from './progress.js';

/** What a fitted model holds, in one phrase: PaDiM's channels, PatchCore's bank, the ensemble's both. */

/**
 * The summary's list of the highest calibration images (the first sets fpr0) and how to leave one out:
 * kensa train's and kensa classify train's.
 */
export function highestLines(model: KensaModel, file: string): string[] {
  return [
    tr(
      '  highest calibration scores (the first sets fpr0; look at any that stands far above the next):',
      '  校正スコアの高い画像（最初のものが fpr0。次より大きく離れたものは確認してください）:',
    ),
    ...highestCalibration(model.calibrationScores, model.meta.calibration).map((h) => `  ${rankedLine(h)}`),
    tr(
      `  (leave an odd one out without re-training: kensa threshold --model ${file} --exclude FILE)`,
      `  （変な画像は再学習せずに除けます: kensa threshold --model ${file} --exclude ファイル）`,
    ),
  ];
}
export function methodDetail(method: string, settings: Record<string, unknown>): string {
  if (method === 'padim') return `d ${String(settings.d)}`;
  if (method === 'ensemble') {
    const member = (name: string) => (settings[name] ?? {}) as Record<string, unknown>;
    return `PatchCore ${methodDetail('patchcore', member('patchcore'))}${tr(', ', '、')}PaDiM ${methodDetail('padim', member('padim'))}`;
  }
  return tr(
    `memory bank ${String(settings.bank_size ?? '')} of ${String(settings.patches ?? '')} patches`,
    `メモリバンク ${String(settings.bank_size ?? '')}（パッチ ${String(settings.patches ?? '')} 個から）`,
  );
}

export function register(program: Command): void {
  const command = program
    .command('train')
    .description(
      tr(
        'train on good images only (train/good of an MVTec-layout folder, or a folder of good images) and write a model file',
        '良品画像だけで学習し（MVTec 形式の train/good、または良品画像のフォルダ）、モデルファイルを書き出す',
      ),
    )
    .requiredOption(
      '--data <dir>',
      tr(
        "data folder (train/good, or a folder of good images) or a quoted glob such as 'good/*.png'",
        "データフォルダ（train/good、または良品画像のフォルダ）、または 'good/*.png' のような引用符で囲んだパターン",
      ),
    )
    .requiredOption(
      '--out <model>',
      tr('model file to write (e.g. model.kensa)', '書き出すモデルファイル（例: model.kensa）'),
    )
    .option(
      '--force',
      tr('replace the model file if one is already there', '既にあるモデルファイルを置き換える'),
    )
    .option(
      '--method <name>',
      tr(
        `anomaly-detection method: ${UNSUPERVISED_METHODS.join(', ')} (default ${DEFAULT_METHOD}; ${DEFAULT_TILED_METHOD} with --tile)`,
        `異常検知の手法: ${UNSUPERVISED_METHODS.join('、')}（既定 ${DEFAULT_METHOD}。--tile のときは ${DEFAULT_TILED_METHOD}）`,
      ),
    )
    .option(
      '--backbone <name>',
      tr(`feature extractor: ${backboneNames().join(', ')}`, `特徴抽出器: ${backboneNames().join('、')}`),
      DEFAULT_BACKBONE,
    )
    .option(
      '--weights <file>',
      tr(
        'backbone weights file (default: the cache, else download)',
        'バックボーンの重みファイル（既定: キャッシュ、なければダウンロード）',
      ),
    )
    .option(
      '--backbone-onnx <file>',
      tr(
        'your own feature extractor as an ONNX file, instead of --backbone (kept in the model; see tools/export_backbone.py)',
        '--backbone の代わりに自前の特徴抽出器（ONNX ファイル。モデルに収めます。tools/export_backbone.py 参照）',
      ),
    )
    .option(
      '--layers <a,b,c>',
      tr(
        'with --backbone-onnx: names of its feature maps at strides 4, 8 and 16',
        '--backbone-onnx と併用: ストライド 4・8・16 の特徴マップの名前',
      ),
    );
  addOptions(command, ['size']);
  command.option(
    '--square',
    tr(
      'squeeze every image to --size × --size instead (aspect ratio not kept)',
      '代わりにすべての画像を --size × --size に変形（縦横比を保たない）',
    ),
  );
  addOptions(command, [
    'resize',
    'crop',
    'scale',
    'tile',
    'overlap',
    'd',
    'coreset',
    'neighbors',
    'seed',
    'folds',
    'valFraction',
    'quantile',
    'batch',
    'pixelLimit',
    'mmPerPixel',
  ]);
  command.action(async (o) => {
    const progress = progressReporter();
    try {
      const r = await train({
        data: o.data,
        out: o.out,
        force: o.force,
        method: o.method,
        // the default --backbone gives way to --backbone-onnx; one given on the command line is refused with it
        backbone:
          o.backboneOnnx && command.getOptionValueSource('backbone') !== 'cli' ? undefined : o.backbone,
        backboneOnnx: o.backboneOnnx,
        layers: o.layers,
        weights: o.weights,
        preprocess: preprocessFrom(o),
        d: o.d,
        coreset: o.coreset,
        neighbors: o.neighbors,
        seed: o.seed,
        folds: o.folds,
        valFraction: o.valFraction,
        quantile: o.quantile,
        batch: o.batch,
        pixelLimit: o.pixelLimit,
        mmPerPixel: o.mmPerPixel,
        onProgress: progress,
        onPlan: notice(progress, 'memory'),
        onWarning: notice(progress, 'warning'),
      });
      progress.stop();
      const m = r.model.meta;
      const c = m.calibration;
      const settings = methodMeta(m);
      const detail = methodDetail(m.method, settings);
      const mib = ((await modelFileSize(o.out)) / 2 ** 20).toFixed(1);
      console.log(
        tr(`model written: ${o.out} (${mib} MiB)`, `モデルを書き出しました: ${o.out}（${mib} MiB）`),
      );
      console.log(
        tr(
          `  ${m.method}, backbone ${m.backbone.name}, ${detail}; ${describePreprocess(m.preprocess)}`,
          `  ${m.method}、バックボーン ${m.backbone.name}、${detail}。${describePreprocess(m.preprocess)}`,
        ),
      );
      const how = {
        loo: tr(
          'leave-one-out scores (each image scored by the model of all the others)',
          '1 枚抜きのスコア（各画像をほかのすべての画像のモデルで採点）',
        ),
        kfold:
          m.method === 'ensemble' && settings.padim_calibration === 'loo'
            ? tr(
                `out-of-sample scores (PatchCore: ${c.folds} folds; PaDiM: leave-one-out)`,
                `その画像を除いたモデルによるスコア（PatchCore は ${c.folds} 分割、PaDiM は 1 枚抜き）`,
              )
            : tr(`out-of-fold scores (${c.folds} folds)`, `分割外のスコア（${c.folds} 分割）`),
        holdout: tr('held-out images', '取り分けた画像'),
      }[c.mode];
      console.log(
        tr(
          `  fitted on ${r.train.length} good images; calibrated on ${c.scores.count} ${how}`,
          `  良品 ${r.train.length} 枚で学習。校正は ${c.scores.count} 枚の${how}`,
        ),
      );
      console.log(`  ${promise(c.scores.count, m.thresholds.fpr0)}`);
      console.log(
        tr(
          `  quantile ${m.thresholds.quantile?.toFixed(4)} (the ${c.quantile} quantile of the calibration scores)`,
          `  quantile ${m.thresholds.quantile?.toFixed(4)}（校正スコアの ${c.quantile} 分位点）`,
        ),
      );
      for (const line of highestLines(r.model, o.out)) console.log(line);
      console.log(
        tr(`  time ${r.timings_s.total.toFixed(1)} s`, `  時間 ${r.timings_s.total.toFixed(1)} 秒`),
      );
    } finally {
      progress.stop();
    }
  });
}
