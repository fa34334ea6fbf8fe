/** kensa fetch-weights: download (or check) backbone weights into the cache, e.g. before going offline. */
import type { Command } from 'commander';
import { tr } from '../i18n.js';
import { backboneNames, DEFAULT_BACKBONE, getBackbone } from '../backbone/registry.js';
import { resolveWeights } from '../backbone/weights.js';
import { progressReporter } from './progress.js';

export function register(program: Command): void {
  program
    .command('fetch-weights')
    .description(
      tr(
        'download backbone weights into the cache and verify their sha256 (default: the default backbone)',
        'バックボーンの重みをキャッシュにダウンロードし sha256 を確認（既定: 既定のバックボーン）',
      ),
    )
    .argument(
      '[backbone...]',
      tr(
        `backbones to fetch (${backboneNames().join(', ')})`,
        `取得するバックボーン（${backboneNames().join('、')}）`,
      ),
    )
    .option('--all', tr('fetch the weights of every backbone', 'すべてのバックボーンの重みを取得'))
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
