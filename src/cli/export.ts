/** kensa export: a trained model as one ONNX graph, a Triton model repository, or a static web page. */
import type { Command } from 'commander';
import { tr } from '../i18n.js';
import { EXPORT_FORMATS, exportModel, type ExportFormat } from '../export/export.js';
import { addOptions, choice, threshold } from './options.js';

export function register(program: Command): void {
  const command = program
    .command('export')
    .description(
      tr(
        'write a trained model for other runtimes: onnx (one graph), triton (a model repository), web (an offline inspection page)',
        '学習済みモデルを他の実行環境向けに書き出す: onnx（1 つのグラフ）、triton（モデルリポジトリ）、web（オフラインの検査ページ）',
      ),
    )
    .requiredOption('--model <file>', tr('model file from kensa train', 'kensa train で作ったモデルファイル'))
    .requiredOption('--out <dir>', tr('folder to write', '書き出すフォルダ'))
    .option(
      '--format <format>',
      EXPORT_FORMATS.join(', '),
      choice<ExportFormat>('--format', EXPORT_FORMATS),
      'onnx',
    )
    .option(
      '--threshold <t>',
      tr(
        'the threshold recorded as the default: fpr0, f1, quantile, custom or a number (default: custom when set, else fpr0)',
        '既定として記録するしきい値: fpr0、f1、quantile、custom、または数値（既定: custom があればそれ、なければ fpr0）',
      ),
      threshold,
    )
    .option(
      '--name <name>',
      tr('triton: the model’s name in the repository', 'triton: リポジトリでのモデル名'),
      'kensa',
    )
    .option(
      '--weights <file>',
      tr(
        'backbone weights file (default: the cache, else download)',
        'バックボーンの重みファイル（既定: キャッシュ、なければダウンロード）',
      ),
    );
  addOptions(command, ['tritonMaxBatch', 'maxQueueDelayMs']).action(async (o) => {
    const r = await exportModel({
      model: o.model,
      out: o.out,
      format: o.format,
      threshold: o.threshold,
      name: o.name,
      maxBatch: o.tritonMaxBatch,
      maxQueueDelayMs: o.maxQueueDelayMs,
      weights: o.weights,
    });
    if (r.info.tiling) {
      console.log(`exported (onnx, tiled): ${o.out}  [${r.files.join(', ')}]`);
      console.log(
        `  tile.onnx: tiles uint8 [N, ${r.info.tiling.size}, ${r.info.tiling.size}, 3] → grids; map.onnx: the stitched grid → the map; ` +
          `how to tile and stitch: kensa.json (tiling.rule); NG when score > ${r.info.threshold.value.toFixed(4)} (${r.info.threshold.name})`,
      );
      return;
    }
    const size = r.info.input.height
      ? `${r.info.input.height}×${r.info.input.width}`
      : 'H×W from the image size';
    console.log(`exported (${o.format}): ${o.out}  [${r.files.join(', ')}]`);
    console.log(
      `  graph ${(r.onnxBytes / 1e6).toFixed(1)} MB: image uint8 [N, ${size}, 3] → anomaly_map, score; ` +
        `NG when score > ${r.info.threshold.value.toFixed(4)} (${r.info.threshold.name})`,
    );
    if (o.format === 'web')
      console.log(`  open ${o.out}/index.html in a browser (works offline, from file://)`);
  });
}
