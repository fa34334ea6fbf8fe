/** kensa backbones: the supported backbones and whether their weights are in the cache. */
import { existsSync } from 'node:fs';
import { tr } from '../i18n.js';
import { join } from 'node:path';
import type { Command } from 'commander';
import { BACKBONES, DEFAULT_BACKBONE } from '../backbone/registry.js';
import { defaultCacheDir } from '../backbone/weights.js';

export function register(program: Command): void {
  program
    .command('backbones')
    .description(
      tr(
        'list the supported backbones, their feature channels and where their weights are',
        '対応するバックボーン、その特徴チャンネル数と重みの場所を一覧表示',
      ),
    )
    .option('--json', tr('print JSON instead of a table', '表の代わりに JSON を出力'))
    .action((options: { json?: boolean }) => {
      const cache = defaultCacheDir();
      const rows = BACKBONES.map((b) => ({
        name: b.name,
        default: b.name === DEFAULT_BACKBONE,
        channels: b.channels,
        default_d: b.defaultD,
        weights: b.weights.url,
        sha256: b.weights.sha256,
        cached: existsSync(join(cache, b.weights.fileName)),
      }));
      if (options.json) {
        console.log(JSON.stringify({ cache, backbones: rows }, null, 2));
        return;
      }
      console.log(`weights cache: ${cache}\n`);
      for (const r of rows) {
        console.log(
          `${r.name.padEnd(20)} channels ${r.channels.join('+').padEnd(14)} d ${String(r.default_d).padEnd(4)} ` +
            `${r.cached ? 'cached    ' : 'not cached'}${r.default ? '  (default)' : ''}`,
        );
      }
      console.log(
        tr(
          '\nany other network: kensa train --backbone-onnx FILE --layers A,B,C (tools/export_backbone.py writes FILE from torchvision or timm)',
          '\nその他のネットワーク: kensa train --backbone-onnx FILE --layers A,B,C（FILE は tools/export_backbone.py で torchvision や timm から書き出せます）',
        ),
      );
    });
}
