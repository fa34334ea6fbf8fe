/** kensa train: fit a model on good images and write the model file. */
import type { Command } from 'commander';
import { backboneNames, DEFAULT_BACKBONE } from '../backbone/registry.js';
import { describePreprocess } from '../image/preprocess.js';
import { METHOD_NAMES } from '../models/registry.js';
import { highestCalibration, promise, rankedLine } from '../pipeline/contracts/calibration.js';
import { methodMeta, modelFileSize } from '../pipeline/contracts/model-file.js';
import { DEFAULT_FOLDS, DEFAULT_METHOD, train } from '../pipeline/verbs/train.js';
import { batch, fraction, integer, pixelLimit, preprocessFrom, probability, scale } from './options.js';
import { notice, progressReporter } from './progress.js';

export function register(program: Command): void {
  program
    .command('train')
    .description(
      'train on good images only (train/good of an MVTec-layout folder, or a folder of good images) and write a model file',
    )
    .requiredOption(
      '--data <dir>',
      "data folder (train/good, or a folder of good images) or a quoted glob such as 'good/*.png'",
    )
    .requiredOption('--out <model>', 'model file to write (e.g. model.kensa)')
    .option('--method <name>', `anomaly-detection method: ${METHOD_NAMES.join(', ')}`, DEFAULT_METHOD)
    .option('--backbone <name>', `feature extractor: ${backboneNames().join(', ')}`, DEFAULT_BACKBONE)
    .option('--weights <file>', 'backbone weights file (default: the cache, else download)')
    .option(
      '--size <n>',
      'process at about n×n pixels, aspect ratio kept (default 224; a multiple of 16)',
      integer('--size', 32, 8192),
    )
    .option('--square', 'squeeze every image to --size × --size instead (aspect ratio not kept)')
    .option(
      '--resize <n>',
      'resize the shorter side to n, then centre-crop (with --crop)',
      integer('--resize', 32, 8192),
    )
    .option('--crop <n>', 'centre crop size after --resize (a multiple of 16)', integer('--crop', 32, 8192))
    .option('--scale <f>', 'process at f × the native resolution (e.g. 0.5)', scale)
    .option(
      '--tile <n>',
      'cut the processed image into n×n tiles (a multiple of 16); native resolution unless --scale or --size',
      integer('--tile', 32, 4096),
    )
    .option(
      '--overlap <n>',
      'least overlap of neighbouring tiles in pixels (default 96; a multiple of 16)',
      integer('--overlap', 0, 4080),
    )
    .option(
      '--d <n>',
      'padim: channels kept (default: 100 for resnet18, 550 for wide_resnet50_2, all for EfficientNet-Lite)',
      integer('--d', 1, 4096),
    )
    .option(
      '--coreset <f>',
      'patchcore: share of the training patches kept in the memory bank (default 0.1)',
      probability('--coreset'),
    )
    .option(
      '--seed <n>',
      'seed for every random choice (channels, coreset, folds)',
      integer('--seed', 0, 2 ** 32 - 1),
      0,
    )
    .option(
      '--folds <k>',
      `calibrate on out-of-fold scores of every good image, k folds (default: leave-one-out where the method has it in closed form, PaDiM; else ${DEFAULT_FOLDS} folds)`,
      integer('--folds', 2, 100),
    )
    .option(
      '--val-fraction <f>',
      'calibrate on a held-out share of the good images instead of k folds',
      fraction('--val-fraction'),
    )
    .option(
      '--quantile <q>',
      "calibration-score quantile used by '--threshold quantile'",
      probability('--quantile'),
      0.99,
    )
    .option(
      '--batch <n>',
      'most network inputs per backbone batch (default 16 while fitting, 32 when scoring)',
      batch,
    )
    .option('--pixel-limit <n>', 'refuse images with more pixels than this (decompression bombs)', pixelLimit)
    .action(async (o) => {
      const progress = progressReporter();
      try {
        const r = await train({
          data: o.data,
          out: o.out,
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
          `  quantile ${m.thresholds.quantile.toFixed(4)} (the ${c.quantile} quantile of the calibration scores)`,
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
