/** kensa watch: inspect every image that appears in a drop folder, once, until stopped. */
import { InvalidArgumentError, type Command } from 'commander';
import { tr } from '../i18n.js';
import { basename } from 'node:path';
import { watch } from '../pipeline/verbs/watch.js';
import { addOptions, threshold } from './options.js';
import { setGracefulStop } from './signals.js';

/** --move-to OK_DIR,NG_DIR */
function moveTo(value: string): { ok: string; ng: string } {
  const parts = value.split(',');
  if (parts.length !== 2 || !parts[0].trim() || !parts[1].trim())
    throw new InvalidArgumentError(
      `Expected two folders separated by a comma (OK_DIR,NG_DIR) for --move-to but received '${value}'`,
    );
  return { ok: parts[0].trim(), ng: parts[1].trim() };
}

export function register(program: Command): void {
  const command = program
    .command('watch')
    .description(
      tr(
        "inspect every image that appears in a drop folder (a camera's or a PLC's), each once, when its file is complete; append to the results; until stopped (Ctrl-C, SIGTERM)",
        'ドロップフォルダ（カメラや PLC が画像を置くフォルダ）に現れる画像を、書き込みが終わってから 1 枚ずつ一度だけ検査し、結果に追記。止めるまで動く（Ctrl-C、SIGTERM）',
      ),
    )
    .argument('<folder>', tr('the drop folder (its sub-folders too)', 'ドロップフォルダ（サブフォルダも）'))
    .requiredOption('--model <file>', tr('model file from kensa train', 'kensa train で作ったモデルファイル'))
    .requiredOption(
      '--out <dir>',
      tr(
        'results folder (appended to; a restart goes on where it stopped)',
        '結果フォルダ（追記。再起動すると続きから）',
      ),
    )
    .option(
      '--threshold <t>',
      tr(
        'fpr0, f1, quantile, custom, or a number; default: custom when the model has one, else fpr0',
        'fpr0、f1、quantile、custom、または数値。既定: モデルに custom があればそれ、なければ fpr0',
      ),
      threshold,
    )
    .option(
      '--move-to <ok,ng>',
      tr('move each inspected image to OK_DIR or NG_DIR', '検査した画像を OK_DIR か NG_DIR に移動'),
      moveTo,
    )
    .option('--no-overlays', tr('skip the heat-map overlays', 'ヒートマップのオーバーレイを作らない'))
    .option(
      '--weights <file>',
      tr(
        'backbone weights file (default: the cache, else download)',
        'バックボーンの重みファイル（既定: キャッシュ、なければダウンロード）',
      ),
    );
  addOptions(command, [
    'intervalMs',
    'settleMs',
    'batch',
    'pixelLimit',
    'mmPerPixel',
    'minDefectMm',
    'overlayOpacity',
  ]).action(async (folder: string, o) => {
    const stop = new AbortController();
    setGracefulStop((signal) => {
      process.stderr.write(
        `kensa: ${signal}: ${tr('finishing the image in hand, then stopping', '処理中の画像を終えてから止まります')}\n`,
      );
      stop.abort();
    });
    const time = () => new Date().toTimeString().slice(0, 8);
    try {
      const s = await watch({
        model: o.model,
        folder,
        out: o.out,
        threshold: o.threshold,
        moveTo: o.moveTo,
        overlays: o.overlays,
        weights: o.weights,
        batch: o.batch,
        pixelLimit: o.pixelLimit,
        mmPerPixel: o.mmPerPixel,
        minDefectMm: o.minDefectMm,
        overlayOpacity: o.overlayOpacity,
        intervalMs: o.intervalMs,
        settleMs: o.settleMs,
        signal: stop.signal,
        onPlan: (line) => process.stderr.write(`kensa: ${tr('memory', 'メモリ')}: ${line}\n`),
        onLog: (line) => process.stderr.write(`kensa: ${line}\n`),
        onImage: (p) =>
          console.log(
            `${time()}  ${p.verdict}  ${p.score.toPrecision(4)}  ${basename(p.file)}${p.regions.length ? tr(`  (${p.regions.length} region${p.regions.length === 1 ? '' : 's'})`, `  （領域 ${p.regions.length}）`) : ''}`,
          ),
      });
      console.log(
        tr(
          `stopped: ${s.inspected} images inspected (${s.ng} NG), ${s.errors} not readable`,
          `停止しました: ${s.inspected} 枚を検査（NG ${s.ng} 枚）、読めない画像 ${s.errors} 枚`,
        ),
      );
    } finally {
      setGracefulStop(undefined);
    }
  });
}
