/**
 * kensa threshold: a model's thresholds and the calibration images behind them; act on them without
 * re-training: store your own (--set, --unset), leave odd calibration images out of fpr0 and quantile
 * (--exclude) or take them back (--include). Only the model file's header is rewritten.
 */
import type { Command } from 'commander';
import { tr } from '../i18n.js';
import {
  findCalibrationImage,
  highestCalibration,
  rankedLine,
  withExclusions,
} from '../pipeline/contracts/calibration.js';
import { resolveThreshold } from '../pipeline/contracts/decisions.js';
import {
  loadCalibrationScores,
  loadModelMetadata,
  updateModelMetadata,
  type ModelMetadata,
} from '../pipeline/contracts/model-file.js';
import { KensaError } from '../util/errors.js';
import { thresholdValue } from './options.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

interface ThresholdOptions {
  model: string;
  set?: number;
  unset?: boolean;
  exclude?: string[];
  include?: string[];
}

/** The model's calibration images by the names given, with a message for a model that has none. */
async function indicesOf(meta: ModelMetadata, files: string[] | undefined, file: string): Promise<number[]> {
  if (!files?.length) return [];
  const images = meta.calibration.images;
  if (!images)
    throw new KensaError(
      'E_ARGUMENT',
      'this model does not record its calibration images (it was trained by an older kensa); train it again to leave images out',
      { file },
    );
  const out: number[] = [];
  for (const f of files) out.push(await findCalibrationImage(images, f));
  return out;
}

export function register(program: Command): void {
  program
    .command('threshold')
    .description(
      tr(
        "show a model's thresholds and the highest calibration images; store your own (--set), or leave odd calibration images out (--exclude) — without re-training",
        'モデルのしきい値と校正スコアの高い画像を表示。自分のしきい値を保存（--set）、変な校正画像を除外（--exclude）— 再学習なし',
      ),
    )
    .requiredOption('--model <file>', tr('model file', 'モデルファイル'))
    .option(
      '--set <value>',
      tr(
        'threshold to store as "custom" (then kensa predict uses it by default)',
        '"custom" として保存するしきい値（以後 kensa predict の既定）',
      ),
      thresholdValue('--set'),
    )
    .option(
      '--unset',
      tr(
        'remove the custom threshold (kensa predict goes back to fpr0)',
        'custom しきい値を削除（kensa predict は fpr0 に戻る）',
      ),
    )
    .option(
      '--exclude <image>',
      tr(
        'leave a calibration image out of fpr0 and quantile (its path, or a copy of the file); repeatable',
        '校正画像を fpr0 と quantile から除く（パス、またはそのファイルのコピー）。繰り返し可',
      ),
      collect,
    )
    .option(
      '--include <image>',
      tr('take an excluded calibration image back; repeatable', '除外した校正画像を戻す。繰り返し可'),
      collect,
    )
    .action(async (o: ThresholdOptions) => {
      if (o.set !== undefined && o.unset)
        throw new KensaError('E_ARGUMENT', 'use either --set or --unset, not both');
      let meta = await loadModelMetadata(o.model);
      const exclude = await indicesOf(meta, o.exclude, o.model);
      const include = await indicesOf(meta, o.include, o.model);
      const scores = await loadCalibrationScores(o.model);
      const changing = o.set !== undefined || o.unset || exclude.length || include.length;
      if (changing) {
        meta = await updateModelMetadata(o.model, (m) => {
          const thresholds = { ...m.thresholds };
          let calibration = m.calibration;
          if (exclude.length || include.length) {
            const next = withExclusions(scores, m.calibration, { exclude, include });
            calibration = next.calibration;
            Object.assign(thresholds, next.thresholds);
          }
          if (o.set !== undefined) thresholds.custom = o.set;
          if (o.unset) delete thresholds.custom;
          return { ...m, calibration, thresholds };
        });
        const said: string[] = [];
        const images = (n: number) => `${n} calibration image${n === 1 ? '' : 's'}`;
        if (exclude.length)
          said.push(tr(`left out ${images(exclude.length)}`, `校正画像 ${exclude.length} 枚を除外`));
        if (include.length)
          said.push(tr(`took back ${images(include.length)}`, `校正画像 ${include.length} 枚を戻しました`));
        if (o.set !== undefined)
          said.push(tr(`stored custom threshold ${o.set}`, `独自のしきい値 ${o.set} を保存`));
        if (o.unset) said.push(tr('removed the custom threshold', '独自のしきい値を外しました'));
        console.log(
          tr(
            `${said.join('; ')} in ${o.model} (only its header was rewritten)`,
            `${o.model}: ${said.join('。')}（ヘッダーだけを書き換えました）`,
          ),
        );
      }
      const used = resolveThreshold(meta.thresholds).name;
      for (const [name, value] of Object.entries(meta.thresholds))
        if (value !== undefined)
          console.log(
            `${name.padEnd(9)} ${value}${name === used ? tr('   <- kensa predict uses this by default', '   <- kensa predict の既定') : ''}`,
          );
      const c = meta.calibration;
      const excluded = c.excluded?.length ?? 0;
      const how =
        c.mode === 'loo'
          ? tr('leave-one-out', '1 枚抜き')
          : c.mode === 'kfold'
            ? tr(`${c.folds} folds`, `${c.folds} 分割`)
            : tr('hold-out', '取り分け');
      const updates = meta.training.updates?.length ?? 0;
      console.log(
        tr(
          `calibration: ${c.scores.count} good images (${how}${updates ? `; ${updates} kensa update${updates === 1 ? '' : 's'} since` : ''})` +
            `${excluded ? `, ${excluded} left out with --exclude` : ''}; the highest, the first setting fpr0:`,
          `校正: 良品 ${c.scores.count} 枚（${how}${updates ? `。その後 kensa update ${updates} 回` : ''}）` +
            `${excluded ? `、--exclude で ${excluded} 枚除外` : ''}。スコアの高い画像（最初のものが fpr0）:`,
        ),
      );
      for (const h of highestCalibration(scores, c)) console.log(rankedLine(h));
    });
}
