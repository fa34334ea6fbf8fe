/** kensa predict: inspect new images with a trained model. */
import type { Command } from 'commander';
import { predict } from '../pipeline/verbs/predict.js';
import { join } from 'node:path';
import { addOptions, threshold } from './options.js';
import { notice, progressReporter } from './progress.js';

export function register(program: Command): void {
  const command = program
    .command('predict')
    .description(
      'inspect images (files, folders or glob patterns): OK/NG, scores, defect boxes, NG list and heat-map overlays',
    )
    .argument('<images...>', 'image files, folders or glob patterns (quote patterns)')
    .requiredOption('--model <file>', 'model file from kensa train')
    .requiredOption('--out <dir>', 'results folder')
    .option(
      '--threshold <t>',
      'fpr0 (no false alarm on known-good images), f1, quantile, custom (set by kensa threshold), or a number; ' +
        'default: custom when the model has one, else fpr0',
      threshold,
    )
    .option('--weights <file>', 'backbone weights file (default: the cache, else download)')
    .option('--no-overlays', 'skip the heat-map overlays')
    .option('--figures', 'also write the five-panel figure of each image')
    .option('--report', 'also write report.html (open it in a browser; implies --figures)')
    .option('--fail-fast', 'stop at the first unreadable image (default: list it in errors.csv and go on)');
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
        console.log(
          `results: ${o.out} (predictions.csv, regions.csv, predictions.json, ng_list.txt${o.overlays ? ', overlays/' : ''})`,
        );
        console.log(
          `  ${predictions.length} images: ${ng} NG, ${predictions.length - ng} OK (threshold ${t.toFixed(3)})`,
        );
        if (errors.length) {
          process.stderr.write(
            `kensa: ${errors.length} image(s) could not be read; see ${o.out}/errors.csv\n`,
          );
          for (const e of errors.slice(0, 5)) process.stderr.write(`  ${e.error}\n`);
          process.exitCode = 3;
        }
        if (o.report) console.log(`report: ${join(o.out, 'report.html')}  (open it in a browser)`);
      } finally {
        progress.stop();
      }
    },
  );
}
