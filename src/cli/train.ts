/** kensa train: fit a model on good images and write the model file. */
import type { Command } from 'commander';
import { backboneNames, DEFAULT_BACKBONE } from '../backbone/registry.js';
import { train } from '../pipeline/train.js';
import { fraction, integer, preprocessFrom, probability } from './options.js';
import { progressReporter } from './progress.js';

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
    .option('--backbone <name>', `feature extractor: ${backboneNames().join(', ')}`, DEFAULT_BACKBONE)
    .option('--weights <file>', 'backbone weights file (default: the cache, else download)')
    .option(
      '--size <n>',
      'resize every image to an n×n square (default 224; a multiple of 16)',
      integer('--size'),
    )
    .option(
      '--resize <n>',
      'resize the shorter side to n, then centre-crop (with --crop)',
      integer('--resize'),
    )
    .option('--crop <n>', 'centre crop size after --resize (a multiple of 16)', integer('--crop'))
    .option(
      '--d <n>',
      'channels kept (default: 100 for resnet18, 550 for wide_resnet50_2, all for EfficientNet-Lite)',
      integer('--d'),
    )
    .option('--seed <n>', 'seed for the channel choice and the validation split', integer('--seed'), 0)
    .option(
      '--val-fraction <f>',
      'share of the good images held out to calibrate the thresholds',
      fraction('--val-fraction'),
      0.1,
    )
    .option(
      '--quantile <q>',
      "validation-score quantile used by '--threshold quantile'",
      probability('--quantile'),
      0.99,
    )
    .option(
      '--batch <n>',
      'images per backbone batch (default 16 while fitting, 32 for validation)',
      integer('--batch'),
    )
    .option(
      '--pixel-limit <n>',
      'refuse images with more pixels than this (decompression bombs)',
      integer('--pixel-limit'),
    )
    .action(async (o) => {
      const progress = progressReporter();
      try {
        const r = await train({
          data: o.data,
          out: o.out,
          backbone: o.backbone,
          weights: o.weights,
          preprocess: preprocessFrom(o),
          d: o.d,
          seed: o.seed,
          valFraction: o.valFraction,
          quantile: o.quantile,
          batch: o.batch,
          pixelLimit: o.pixelLimit,
          onProgress: progress,
          onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
        });
        progress.stop();
        const m = r.model.meta;
        console.log(`model written: ${o.out}`);
        console.log(
          `  backbone ${m.backbone.name}, d ${m.padim.d}, input ${m.padim.grid[0] * 4}×${m.padim.grid[1] * 4}`,
        );
        console.log(`  trained on ${r.train.length} good images, calibrated on ${r.validation.length}`);
        console.log(
          `  thresholds: fpr0 ${m.thresholds.fpr0.toFixed(3)} (no false alarm on the validation images), quantile ${m.thresholds.quantile.toFixed(3)}`,
        );
        console.log(`  time ${r.timings_s.total.toFixed(1)} s`);
      } finally {
        progress.stop();
      }
    });
}
