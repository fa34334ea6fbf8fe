/** kensa fetch-weights: download (or check) backbone weights into the cache, e.g. before going offline. */
import type { Command } from 'commander';
import { backboneNames, DEFAULT_BACKBONE, getBackbone } from '../backbone/registry.js';
import { resolveWeights } from '../backbone/weights.js';
import { progressReporter } from './progress.js';

export function register(program: Command): void {
  program
    .command('fetch-weights')
    .description(
      'download backbone weights into the cache and verify their sha256 (default: the default backbone)',
    )
    .argument('[backbone...]', `backbones to fetch (${backboneNames().join(', ')})`)
    .option('--all', 'fetch the weights of every backbone')
    .action(async (names: string[], options: { all?: boolean }) => {
      const wanted = options.all ? backboneNames() : names.length ? names : [DEFAULT_BACKBONE];
      const specs = wanted.map(getBackbone);
      for (const spec of specs) {
        const progress = progressReporter();
        try {
          const w = await resolveWeights(spec, { onProgress: progress });
          progress.stop();
          console.log(
            `${spec.name}: ${w.path} (sha256 ${w.sha256}, ${w.origin === 'download' ? 'downloaded' : 'already cached'})`,
          );
        } finally {
          progress.stop();
        }
      }
    });
}
