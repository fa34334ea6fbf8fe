/** kensa threshold: show a model's thresholds, or store a chosen one (e.g. from the report's slider). */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { loadModel, setCustomThreshold } from '../pipeline/model-file.js';

export function register(program: Command): void {
  program
    .command('threshold')
    .description(
      "show a model's thresholds, or store your own with --set (then kensa predict uses it by default)",
    )
    .requiredOption('--model <file>', 'model file')
    .option('--set <value>', 'threshold to store as "custom"', (v: string) => {
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n))
        throw new InvalidArgumentError(`Expected a number for --set but received '${v}'`);
      return n;
    })
    .action(async (o: { model: string; set?: number }) => {
      const model = o.set === undefined ? await loadModel(o.model) : await setCustomThreshold(o.model, o.set);
      if (o.set !== undefined) console.log(`stored custom threshold ${o.set} in ${o.model}`);
      for (const [name, value] of Object.entries(model.meta.thresholds))
        if (value !== undefined) console.log(`${name.padEnd(9)} ${value}`);
    });
}
