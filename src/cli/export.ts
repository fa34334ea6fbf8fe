/** kensa export: a trained model as one ONNX graph, a Triton model repository, or a static web page. */
import type { Command } from 'commander';
import { EXPORT_FORMATS, exportModel, type ExportFormat } from '../export/export.js';
import { addOptions, choice, threshold } from './options.js';

export function register(program: Command): void {
  const command = program
    .command('export')
    .description(
      'write a trained model for other runtimes: onnx (one graph), triton (a model repository), web (an offline inspection page)',
    )
    .requiredOption('--model <file>', 'model file from kensa train')
    .requiredOption('--out <dir>', 'folder to write')
    .option(
      '--format <format>',
      EXPORT_FORMATS.join(', '),
      choice<ExportFormat>('--format', EXPORT_FORMATS),
      'onnx',
    )
    .option(
      '--threshold <t>',
      'the threshold recorded as the default: fpr0, f1, quantile, custom or a number (default: custom when set, else fpr0)',
      threshold,
    )
    .option('--name <name>', 'triton: the model’s name in the repository', 'kensa')
    .option('--weights <file>', 'backbone weights file (default: the cache, else download)');
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
