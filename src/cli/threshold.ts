/** kensa threshold: show a model's thresholds, or store a chosen one (e.g. from the report's slider). */
import type { Command } from 'commander';
import { loadModelMetadata, updateThresholds } from '../pipeline/model-file.js';
import { thresholdValue } from './options.js';

export function register(program: Command): void {
  program
    .command('threshold')
    .description(
      "show a model's thresholds, or store your own with --set (then kensa predict uses it by default)",
    )
    .requiredOption('--model <file>', 'model file')
    .option('--set <value>', 'threshold to store as "custom"', thresholdValue('--set'))
    .action(async (o: { model: string; set?: number }) => {
      const thresholds =
        o.set === undefined
          ? (await loadModelMetadata(o.model)).thresholds
          : await updateThresholds(o.model, { custom: o.set });
      if (o.set !== undefined) console.log(`stored custom threshold ${o.set} in ${o.model}`);
      for (const [name, value] of Object.entries(thresholds))
        if (value !== undefined) console.log(`${name.padEnd(9)} ${value}`);
    });
}
