/** kensa classify train|test|predict: a supervised OK/NG classifier for those who have NG images. */
import { join } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { AUGMENTATIONS, type Augmentation } from '../models/classifier/augment.js';
import {
  classifierRecord,
  predictClassifier,
  testClassifier,
  trainClassifier,
} from '../pipeline/verbs/classify.js';
import { classifier } from '../models/classifier/method.js';
import type { ThresholdChoice } from '../pipeline/contracts/decisions.js';
import { addOptions, preprocessFrom, thresholdFor } from './options.js';
import { groupWarnings } from '../util/warnings.js';
import { notice, progressReporter } from './progress.js';
import { typeLines } from './test.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** --augment all | none | a comma-separated list of kinds. */
function augmentations(value: string): Augmentation[] {
  if (value === 'all') return [...AUGMENTATIONS];
  if (value === 'none') return [];
  const kinds = value.split(',').map((k) => k.trim());
  const bad = kinds.filter((k) => !(AUGMENTATIONS as readonly string[]).includes(k));
  if (bad.length)
    throw new InvalidArgumentError(
      `Expected all, none or a list of ${AUGMENTATIONS.join(', ')} for --augment but received '${value}'`,
    );
  return kinds as Augmentation[];
}

/** --threshold fpr0 | f1 | quantile | custom | a probability (the classifier's score range). */
const threshold = thresholdFor(classifier.scoreRange);

/** The options test and predict share, from the parsed command line. */
const runOptions = (o: Record<string, unknown>, progress: ReturnType<typeof progressReporter>) => ({
  model: o.model as string,
  out: o.out as string,
  threshold: o.threshold as ThresholdChoice | undefined,
  figures: o.figures as boolean | undefined,
  report: o.report as boolean | undefined,
  weights: o.weights as string | undefined,
  batch: o.batch as number | undefined,
  pixelLimit: o.pixelLimit as number | undefined,
  mmPerPixel: o.mmPerPixel as number | undefined,
  onProgress: progress,
  onWarning: notice(progress, 'warning'),
});

const THRESHOLD_HELP = 'fpr0 (no good validation image NG; default), f1, quantile, custom, or a probability';

export function register(program: Command): void {
  const classify = program
    .command('classify')
    .description(
      'supervised OK/NG classifier from good and NG images (train, test, predict), with class activation maps',
    );

  const train = classify
    .command('train')
    .description('train on good and NG images: train/good and train/<defect>/ of --data, or --good and --ng')
    .option('--data <dir>', 'data folder: train/good (OK) and one folder per defect type under train/ (NG)')
    .option('--good <path>', 'good images (folder, file or quoted pattern); repeatable', collect)
    .option('--ng <path>', 'NG images (folder, file or quoted pattern); repeatable', collect)
    .requiredOption('--out <model>', 'model file to write (e.g. line3-classifier.kensa)')
    .option('--force', 'replace the model file if one is already there')
    .option('--backbone <name>', 'feature extractor (frozen)', 'efficientnet_lite0')
    .option('--weights <file>', 'backbone weights file (default: the cache, else download)')
    .option('--square', 'squeeze every image to --size × --size instead')
    .option(
      '--augment <kinds>',
      `augmentations: all, none, or a list of ${AUGMENTATIONS.join(',')}`,
      augmentations,
    );
  addOptions(train, [
    'size',
    'scale',
    'copies',
    'classifierValFraction',
    'epochs',
    'patience',
    'seed',
    'batch',
    'pixelLimit',
    'mmPerPixel',
  ]);
  train.action(async (o) => {
    const progress = progressReporter();
    try {
      const { model, curves, seconds } = await trainClassifier({
        data: o.data,
        good: o.good,
        ng: o.ng,
        out: o.out,
        force: o.force,
        backbone: o.backbone,
        weights: o.weights,
        preprocess: o.size || o.square || o.scale ? preprocessFrom(o) : undefined,
        augment: o.augment,
        copies: o.copies,
        valFraction: o.classifierValFraction,
        epochs: o.epochs,
        patience: o.patience,
        seed: o.seed,
        batch: o.batch,
        pixelLimit: o.pixelLimit,
        mmPerPixel: o.mmPerPixel,
        onProgress: progress,
        onWarning: notice(progress, 'warning'),
      });
      progress.stop();
      const m = model.meta;
      const r = classifierRecord(model);
      const t = r.training;
      const last = r.history[t.best_epoch - 1] ?? r.history.at(-1)!;
      console.log(`classifier written: ${o.out}`);
      console.log(
        `  ${t.good} good and ${t.ng} NG training images (+${t.copies} augmented copies each: ${t.augment.join(', ') || 'none'}); ` +
          `validation ${t.validation.good} good, ${t.validation.ng} NG`,
      );
      console.log(
        `  ${t.epochs} epochs, best ${t.best_epoch}: validation loss ${last.val_loss?.toFixed(4) ?? 'n/a'}, accuracy ${last.val_accuracy?.toFixed(3) ?? 'n/a'}; ` +
          `calibration error ${r.calibration.ece_before?.toFixed(3) ?? 'n/a'} → ${r.calibration.ece_after?.toFixed(3) ?? 'n/a'} (temperature ${r.calibration.temperature.toFixed(2)})`,
      );
      console.log(
        `  thresholds (probability of NG): fpr0 ${m.thresholds.fpr0.toPrecision(4)}${m.thresholds.f1 !== undefined ? `, f1 ${m.thresholds.f1.toPrecision(4)}` : ''}; ` +
          `learning curves: ${curves}; ${seconds.toFixed(1)} s`,
      );
    } finally {
      progress.stop();
    }
  });

  const testCommand = classify
    .command('test')
    .description(
      'evaluate on test/good and test/<defect>: metrics, curves, predictions, figures with class activation maps',
    )
    .requiredOption('--model <file>', 'classifier file from kensa classify train')
    .requiredOption('--data <dir>', 'data folder with test/good and test/<defect type>')
    .requiredOption('--out <dir>', 'results folder')
    .option('--threshold <t>', THRESHOLD_HELP, threshold)
    .option('--no-figures', 'skip the five-panel figure of each image')
    .option('--report', 'also write report.html (learning curves, ROC, PR, the images)')
    .option('--weights <file>', 'backbone weights file');
  addOptions(testCommand, ['batch', 'pixelLimit', 'mmPerPixel']).action(async (o) => {
    const progress = progressReporter();
    try {
      const { metrics: m } = await testClassifier({
        ...runOptions(o, progress),
        data: o.data,
      });
      progress.stop();
      const c = m.confusion[m.threshold.name]!;
      const ece = m.calibration_error as number | null | undefined;
      console.log(
        `results: ${o.out} (metrics.json, predictions.csv, roc.png, pr.png, ${'learning_curves.png'}${o.figures ? ', figures/' : ''})`,
      );
      console.log(
        `  ${m.counts.images} images: image AUROC ${m.image_auroc?.toFixed(4) ?? 'n/a'}, calibration error ${ece?.toFixed(3) ?? 'n/a'}; ` +
          `at ${m.threshold.name} (p > ${m.threshold.value.toPrecision(4)}): ${c.tp} of ${c.tp + c.fn} NG found, ${c.fp} false alarms of ${c.fp + c.tn} good`,
      );
      for (const line of typeLines(m)) console.log(`  ${line}`);
      for (const w of groupWarnings(m.warnings)) process.stderr.write(`warning: ${w}\n`);
      if (o.report) console.log(`report: ${join(o.out, 'report.html')}  (open it in a browser)`);
    } finally {
      progress.stop();
    }
  });

  const predictCommand = classify
    .command('predict')
    .description(
      'inspect images with a classifier: probability of NG, verdict, class-activation regions, overlays',
    )
    .argument('<images...>', 'image files, folders or quoted glob patterns')
    .requiredOption('--model <file>', 'classifier file from kensa classify train')
    .requiredOption('--out <dir>', 'results folder')
    .option('--threshold <t>', THRESHOLD_HELP, threshold)
    .option('--no-overlays', 'skip the heat-map overlays')
    .option('--figures', 'also write the five-panel figure of each image')
    .option('--report', 'also write report.html')
    .option('--weights <file>', 'backbone weights file');
  addOptions(predictCommand, ['batch', 'pixelLimit', 'mmPerPixel', 'minDefectMm']).action(
    async (images: string[], o) => {
      const progress = progressReporter();
      try {
        const r = await predictClassifier({
          ...runOptions(o, progress),
          inputs: images,
          overlays: o.overlays,
          minDefectMm: o.minDefectMm,
        });
        progress.stop();
        const ng = r.predictions.filter((p) => p.verdict === 'NG').length;
        console.log(
          `results: ${o.out} (predictions.csv, predictions.json, regions.csv, ng_list.txt${o.overlays ? ', overlays/' : ''})`,
        );
        console.log(
          `  ${r.predictions.length} images: ${ng} NG, ${r.predictions.length - ng} OK (p(NG) > ${r.threshold.toPrecision(4)})`,
        );
        if (r.errors.length) {
          process.stderr.write(
            `kensa: ${r.errors.length} image(s) could not be read; see ${o.out}/errors.csv\n`,
          );
          process.exitCode = 3;
        }
        if (o.report) console.log(`report: ${join(o.out, 'report.html')}  (open it in a browser)`);
      } finally {
        progress.stop();
      }
    },
  );
}
