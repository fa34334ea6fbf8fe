/** kensa train: fit a model on good images and write the model file. */
import type { Command } from 'commander';
import { backboneNames, DEFAULT_BACKBONE } from '../backbone/registry.js';
import { describePreprocess } from '../image/preprocess.js';
import { UNSUPERVISED_METHODS } from '../models/registry.js';
import { highestCalibration, promise, rankedLine } from '../pipeline/contracts/calibration.js';
import { methodMeta, modelFileSize } from '../pipeline/contracts/model-file.js';
import { DEFAULT_METHOD, train } from '../pipeline/verbs/train.js';
import { addOptions, preprocessFrom } from './options.js';
import { notice, progressReporter } from './progress.js';

export function register(program: Command): void {
  const command = program
    .command('train')
    .description(
      'train on good images only (train/good of an MVTec-layout folder, or a folder of good images) and write a model file',
    )
    .requiredOption(
      '--data <dir>',
      "data folder (train/good, or a folder of good images) or a quoted glob such as 'good/*.png'",
    )
    .requiredOption('--out <model>', 'model file to write (e.g. model.kensa)')
    .option('--force', 'replace the model file if one is already there')
    .option('--method <name>', `anomaly-detection method: ${UNSUPERVISED_METHODS.join(', ')}`, DEFAULT_METHOD)
    .option('--backbone <name>', `feature extractor: ${backboneNames().join(', ')}`, DEFAULT_BACKBONE)
    .option('--weights <file>', 'backbone weights file (default: the cache, else download)');
  addOptions(command, ['size']);
  command.option('--square', 'squeeze every image to --size × --size instead (aspect ratio not kept)');
  addOptions(command, [
    'resize',
    'crop',
    'scale',
    'tile',
    'overlap',
    'd',
    'coreset',
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
        backbone: o.backbone,
        weights: o.weights,
        preprocess: preprocessFrom(o),
        d: o.d,
        coreset: o.coreset,
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
      const detail =
        m.method === 'padim'
          ? `d ${String(settings.d)}`
          : `memory bank ${String(settings.bank_size ?? '')} of ${String(settings.patches ?? '')} patches`;
      console.log(`model written: ${o.out} (${((await modelFileSize(o.out)) / 2 ** 20).toFixed(1)} MiB)`);
      console.log(
        `  ${m.method}, backbone ${m.backbone.name}, ${detail}; ${describePreprocess(m.preprocess)}`,
      );
      const how = {
        loo: 'leave-one-out scores (each image scored by the model of all the others)',
        kfold: `out-of-fold scores (${c.folds} folds)`,
        holdout: 'held-out images',
      }[c.mode];
      console.log(`  fitted on ${r.train.length} good images; calibrated on ${c.scores.count} ${how}`);
      console.log(`  ${promise(c.scores.count, m.thresholds.fpr0)}`);
      console.log(
        `  quantile ${m.thresholds.quantile?.toFixed(4)} (the ${c.quantile} quantile of the calibration scores)`,
      );
      console.log(
        '  highest calibration scores (the first sets fpr0; look at any that stands far above the next):',
      );
      for (const h of highestCalibration(r.model.calibrationScores, c)) console.log(`  ${rankedLine(h)}`);
      console.log(
        `  (leave an odd one out without re-training: kensa threshold --model ${o.out} --exclude FILE)`,
      );
      console.log(`  time ${r.timings_s.total.toFixed(1)} s`);
    } finally {
      progress.stop();
    }
  });
}
