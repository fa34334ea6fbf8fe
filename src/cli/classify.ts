/** kensa classify train|test|predict: a supervised OK/NG classifier for those who have NG images. */
import { join } from 'node:path';
import { tr } from '../i18n.js';
import { InvalidArgumentError, type Command } from 'commander';
import { AUGMENTATIONS, type Augmentation } from '../models/classifier/augment.js';
import {
  classifierRecord,
  predictClassifier,
  testClassifier,
  trainClassifier,
  HEADS,
  type Head,
} from '../pipeline/verbs/classify.js';
import { classifier } from '../models/classifier/method.js';
import {
  ANOMALY_MEMBERS,
  type AnomalyMember,
  type PatchClassifierState,
} from '../models/classifier/patch-method.js';
import type { ThresholdChoice } from '../pipeline/contracts/decisions.js';
import { addOptions, preprocessFrom, thresholdFor, thresholdText } from './options.js';
import { groupWarnings } from '../util/warnings.js';
import { notice, progressReporter } from './progress.js';
import { typeLines } from './test.js';
import { highestLines } from './train.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** --head patch | image. */
function headChoice(value: string): Head {
  if (!(HEADS as readonly string[]).includes(value))
    throw new InvalidArgumentError(`Expected ${HEADS.join(' or ')} for --head but received '${value}'`);
  return value as Head;
}

/** --anomaly-method ensemble | patchcore. */
function memberChoice(value: string): AnomalyMember {
  if (!(ANOMALY_MEMBERS as readonly string[]).includes(value))
    throw new InvalidArgumentError(
      `Expected ${ANOMALY_MEMBERS.join(' or ')} for --anomaly-method but received '${value}'`,
    );
  return value as AnomalyMember;
}

/** --augment all | none | a comma-separated list of kinds. */
function augmentations(value: string): Augmentation[] {
  if (value === 'all') return [...AUGMENTATIONS];
  if (value === 'none') return [];
  const kinds = value.split(',').map((k) => k.trim());
  const bad = kinds.filter((k) => !(AUGMENTATIONS as readonly string[]).includes(k));
  if (bad.length)
    throw new InvalidArgumentError(
      `Expected all, none or a list of ${AUGMENTATIONS.join(', ')} for --augment but received '${value}'`,
    );
  return kinds as Augmentation[];
}

/** --threshold fpr0 | f1 | quantile | custom | a probability (the classifier's score range). */
const threshold = thresholdFor(classifier.scoreRange);

/** The options test and predict share, from the parsed command line. */
const runOptions = (o: Record<string, unknown>, progress: ReturnType<typeof progressReporter>) => ({
  model: o.model as string,
  out: o.out as string,
  threshold: o.threshold as ThresholdChoice | undefined,
  figures: o.figures as boolean | undefined,
  report: o.report as boolean | undefined,
  weights: o.weights as string | undefined,
  batch: o.batch as number | undefined,
  pixelLimit: o.pixelLimit as number | undefined,
  mmPerPixel: o.mmPerPixel as number | undefined,
  onProgress: progress,
  onWarning: notice(progress, 'warning'),
});

const THRESHOLD_HELP = tr(
  'fpr0 (no good validation image NG; default), f1, quantile, custom, or a probability',
  'fpr0（検証の良品が NG にならない確率、既定）、f1、quantile、custom、または確率',
);

export function register(program: Command): void {
  const classify = program
    .command('classify')
    .description(
      tr(
        'supervised OK/NG classifier from good and NG images (train, test, predict), with class activation maps',
        '良品と NG 画像から学ぶ教師あり OK/NG 分類器（train、test、predict）。クラス活性化マップ付き',
      ),
    );

  const train = classify
    .command('train')
    .description(
      tr(
        'train on good and NG images: train/good and train/<defect>/ of --data, or --good and --ng',
        '良品と NG 画像で学習: --data の train/good と train/<欠陥>/、または --good と --ng',
      ),
    )
    .option(
      '--data <dir>',
      tr(
        'data folder: train/good (OK) and one folder per defect type under train/ (NG)',
        'データフォルダ: train/good（OK）と train/ の下に欠陥の種類ごとのフォルダ（NG）',
      ),
    )
    .option(
      '--good <path>',
      tr(
        'good images (folder, file or quoted pattern); repeatable',
        '良品画像（フォルダ、ファイル、引用符で囲んだパターン）。繰り返し可',
      ),
      collect,
    )
    .option(
      '--ng <path>',
      tr(
        'NG images (folder, file or quoted pattern); repeatable',
        'NG 画像（フォルダ、ファイル、引用符で囲んだパターン）。繰り返し可',
      ),
      collect,
    )
    .requiredOption(
      '--out <model>',
      tr(
        'model file to write (e.g. line3-classifier.kensa)',
        '書き出すモデルファイル（例: line3-classifier.kensa）',
      ),
    )
    .option(
      '--force',
      tr('replace the model file if one is already there', '既にあるモデルファイルを置き換える'),
    )
    .option('--backbone <name>', tr('feature extractor (frozen)', '特徴抽出器（固定）'), 'efficientnet_lite0')
    .option(
      '--weights <file>',
      tr(
        'backbone weights file (default: the cache, else download)',
        'バックボーンの重みファイル（既定: キャッシュ、なければダウンロード）',
      ),
    )
    .option(
      '--square',
      tr('squeeze every image to --size × --size instead', '代わりにすべての画像を --size × --size に変形'),
    )
    .option(
      '--head <head>',
      tr(
        "patch (default): a patch head on the anomaly model's patch scores (--anomaly-method) and the patch embedding, max-pooled (sees small defects, calibrated by --folds); image: logistic regression on the averaged embedding (with augmented copies and a validation split)",
        'patch（既定）: 異常検知モデルのパッチスコア（--anomaly-method）とパッチ埋め込みを入力とするパッチ単位のヘッド、最大値で画像の判定（小さな欠陥も見え、--folds で校正）。image: 埋め込みの画像平均へのロジスティック回帰（拡張コピーと検証用の取り分け付き）',
      ),
      headChoice,
    )
    .option(
      '--anomaly-method <method>',
      tr(
        "--head patch: the anomaly model the head stands on, fitted on the good images: ensemble (default, as kensa train's: PatchCore's and PaDiM's patch scores) or patchcore (PatchCore's alone: a much smaller model file, without PaDiM's Gaussians)",
        '--head patch: ヘッドの土台にする異常検知モデル（良品で学習）: ensemble（既定、kensa train と同じ: PatchCore と PaDiM のパッチスコア）または patchcore（PatchCore のみ: PaDiM のガウス分布がなく、モデルファイルがずっと小さい）',
      ),
      memberChoice,
    )
    .option(
      '--augment <kinds>',
      tr(
        `--head image: augmentations: all, none, or a list of ${AUGMENTATIONS.join(',')}`,
        `--head image: 拡張: all、none、または ${AUGMENTATIONS.join(',')} の一覧`,
      ),
      augmentations,
    );
  addOptions(train, [
    'size',
    'scale',
    'classifierFolds',
    'copies',
    'classifierValFraction',
    'epochs',
    'patience',
    'seed',
    'batch',
    'pixelLimit',
    'mmPerPixel',
  ]);
  train.action(async (o) => {
    const progress = progressReporter();
    // options whose table default applies to one head only reach the library when the user gave them
    const given = <T>(name: string, value: T) =>
      train.getOptionValueSource(name) === 'cli' ? value : undefined;
    try {
      const { model, curves, seconds, timings } = await trainClassifier({
        head: o.head,
        anomalyMethod: o.anomalyMethod,
        folds: given('classifierFolds', o.classifierFolds),
        data: o.data,
        good: o.good,
        ng: o.ng,
        out: o.out,
        force: o.force,
        backbone: o.backbone,
        weights: o.weights,
        preprocess: o.size || o.square || o.scale ? preprocessFrom(o) : undefined,
        augment: o.augment,
        copies: given('copies', o.copies),
        valFraction: given('classifierValFraction', o.classifierValFraction),
        epochs: o.epochs,
        patience: o.patience,
        seed: o.seed,
        batch: o.batch,
        pixelLimit: o.pixelLimit,
        mmPerPixel: o.mmPerPixel,
        onProgress: progress,
        onWarning: notice(progress, 'warning'),
        onPlan: notice(progress, 'memory'),
      });
      progress.stop();
      const m = model.meta;
      const r = classifierRecord(model);
      const t = r.training;
      const last = r.history[t.best_epoch - 1] ?? r.history.at(-1)!;
      console.log(tr(`classifier written: ${o.out}`, `分類器を書き出しました: ${o.out}`));
      const ece = `${r.calibration.ece_before?.toFixed(3) ?? 'n/a'} → ${r.calibration.ece_after?.toFixed(3) ?? 'n/a'}`;
      if (t.folds !== undefined) {
        const on =
          (model.state as PatchClassifierState).anomaly.method === 'ensemble'
            ? tr('the ensemble (PatchCore and PaDiM)', 'アンサンブル（PatchCore と PaDiM）')
            : tr('PatchCore', 'PatchCore '); // a space before the Japanese particle after a Latin word
        console.log(
          tr(
            `  patch head on ${on}: ${t.good} good and ${t.ng} NG images, every one scored out-of-fold (${t.folds} folds; fold heads' best epochs ${t.fold_epochs?.join(', ')})`,
            `  ${on}の上のパッチヘッド: 良品 ${t.good} 枚と NG ${t.ng} 枚、どれも分割外で採点（${t.folds} 分割。各分割のヘッドの最良エポック ${t.fold_epochs?.join(', ')}）`,
          ),
        );
        console.log(
          tr(
            `  ${t.epochs} epochs on every image; calibration error ${ece} (temperature ${r.calibration.temperature.toFixed(2)})`,
            `  全画像で ${t.epochs} エポック。較正誤差 ${ece}（温度 ${r.calibration.temperature.toFixed(2)}）`,
          ),
        );
        if (timings) {
          const s = (k: string) => (timings[k] ?? 0).toFixed(1);
          console.log(
            tr(
              `  time: ${on} and its fold models ${s('anomaly')} s, NG images ${s('ng_images')} s, head ${s('head')} s`,
              `  時間: ${on}と分割モデル ${s('anomaly')} 秒、NG 画像 ${s('ng_images')} 秒、ヘッド ${s('head')} 秒`,
            ),
          );
        }
      } else {
        const kinds = t.augment.join(', ') || tr('none', 'なし');
        const [loss, accuracy] = [last.val_loss?.toFixed(4) ?? 'n/a', last.val_accuracy?.toFixed(3) ?? 'n/a'];
        const temperature = r.calibration.temperature.toFixed(2);
        console.log(
          tr(
            `  ${t.good} good and ${t.ng} NG training images (+${t.copies} augmented copies each: ${kinds}); ` +
              `validation ${t.validation.good} good, ${t.validation.ng} NG`,
            `  学習画像 良品 ${t.good} 枚と NG ${t.ng} 枚（各 ${t.copies} 枚の拡張コピー: ${kinds}）。` +
              `検証 良品 ${t.validation.good} 枚、NG ${t.validation.ng} 枚`,
          ),
        );
        console.log(
          tr(
            `  ${t.epochs} epochs, best ${t.best_epoch}: validation loss ${loss}, accuracy ${accuracy}; ` +
              `calibration error ${ece} (temperature ${temperature})`,
            `  ${t.epochs} エポック、最良 ${t.best_epoch}: 検証損失 ${loss}、正解率 ${accuracy}。` +
              `較正誤差 ${ece}（温度 ${temperature}）`,
          ),
        );
      }
      const f1 = m.thresholds.f1 !== undefined ? `, f1 ${thresholdText(m.thresholds.f1)}` : '';
      console.log(
        tr(
          `  thresholds (probability of NG): fpr0 ${thresholdText(m.thresholds.fpr0)}${f1}; ` +
            `learning curves: ${curves}; ${seconds.toFixed(1)} s`,
          `  しきい値（NG の確率）: fpr0 ${thresholdText(m.thresholds.fpr0)}${f1}。` +
            `学習曲線: ${curves}。${seconds.toFixed(1)} 秒`,
        ),
      );
      for (const line of highestLines(model, o.out)) console.log(line);
    } finally {
      progress.stop();
    }
  });

  const testCommand = classify
    .command('test')
    .description(
      tr(
        'evaluate on test/good and test/<defect>: metrics, curves, predictions, figures with class activation maps',
        'test/good と test/<欠陥> で評価: 指標、曲線、予測、クラス活性化マップの図',
      ),
    )
    .requiredOption(
      '--model <file>',
      tr('classifier file from kensa classify train', 'kensa classify train で作った分類器ファイル'),
    )
    .requiredOption(
      '--data <dir>',
      tr(
        'data folder with test/good and test/<defect type>',
        'test/good と test/<欠陥の種類> のあるデータフォルダ',
      ),
    )
    .requiredOption('--out <dir>', tr('results folder', '結果フォルダ'))
    .option('--threshold <t>', THRESHOLD_HELP, threshold)
    .option('--no-figures', tr('skip the five-panel figure of each image', '画像ごとの 5 枚組の図を作らない'))
    .option(
      '--report',
      tr(
        'also write report.html (learning curves, ROC, PR, the images)',
        'report.html も書き出す（学習曲線、ROC、PR、画像）',
      ),
    )
    .option('--weights <file>', tr('backbone weights file', 'バックボーンの重みファイル'));
  addOptions(testCommand, ['batch', 'pixelLimit', 'mmPerPixel']).action(async (o) => {
    const progress = progressReporter();
    try {
      const { metrics: m } = await testClassifier({
        ...runOptions(o, progress),
        data: o.data,
      });
      progress.stop();
      const c = m.confusion[m.threshold.name]!;
      const ece = m.calibration_error as number | null | undefined;
      console.log(
        `results: ${o.out} (metrics.json, predictions.csv, roc.png, pr.png, ${'learning_curves.png'}${o.figures ? ', figures/' : ''})`,
      );
      console.log(
        `  ${m.counts.images} images: image AUROC ${m.image_auroc?.toFixed(4) ?? 'n/a'}, calibration error ${ece?.toFixed(3) ?? 'n/a'}; ` +
          `at ${m.threshold.name} (p > ${thresholdText(m.threshold.value)}): ${c.tp} of ${c.tp + c.fn} NG found, ${c.fp} false alarms of ${c.fp + c.tn} good`,
      );
      for (const line of typeLines(m)) console.log(`  ${line}`);
      for (const w of groupWarnings(m.warnings)) process.stderr.write(`warning: ${w}\n`);
      if (o.report) console.log(`report: ${join(o.out, 'report.html')}  (open it in a browser)`);
    } finally {
      progress.stop();
    }
  });

  const predictCommand = classify
    .command('predict')
    .description(
      tr(
        'inspect images with a classifier: probability of NG, verdict, class-activation regions, overlays',
        '分類器で画像を検査: NG の確率、判定、クラス活性化の領域、オーバーレイ',
      ),
    )
    .argument(
      '<images...>',
      tr('image files, folders or quoted glob patterns', '画像ファイル、フォルダ、引用符で囲んだパターン'),
    )
    .requiredOption(
      '--model <file>',
      tr('classifier file from kensa classify train', 'kensa classify train で作った分類器ファイル'),
    )
    .requiredOption('--out <dir>', tr('results folder', '結果フォルダ'))
    .option('--threshold <t>', THRESHOLD_HELP, threshold)
    .option('--no-overlays', tr('skip the heat-map overlays', 'ヒートマップのオーバーレイを作らない'))
    .option(
      '--figures',
      tr('also write the five-panel figure of each image', '画像ごとの 5 枚組の図も書き出す'),
    )
    .option('--report', tr('also write report.html', 'report.html も書き出す'))
    .option('--weights <file>', tr('backbone weights file', 'バックボーンの重みファイル'));
  addOptions(predictCommand, ['batch', 'pixelLimit', 'mmPerPixel', 'minDefectMm']).action(
    async (images: string[], o) => {
      const progress = progressReporter();
      try {
        const r = await predictClassifier({
          ...runOptions(o, progress),
          inputs: images,
          overlays: o.overlays,
          minDefectMm: o.minDefectMm,
        });
        progress.stop();
        const ng = r.predictions.filter((p) => p.verdict === 'NG').length;
        console.log(
          `results: ${o.out} (predictions.csv, predictions.json, regions.csv, ng_list.txt${o.overlays ? ', overlays/' : ''})`,
        );
        console.log(
          `  ${r.predictions.length} images: ${ng} NG, ${r.predictions.length - ng} OK (p(NG) > ${thresholdText(r.threshold)})`,
        );
        if (r.errors.length) {
          process.stderr.write(
            `kensa: ${r.errors.length} image(s) could not be read; see ${o.out}/errors.csv\n`,
          );
          process.exitCode = 3;
        }
        if (o.report) console.log(`report: ${join(o.out, 'report.html')}  (open it in a browser)`);
      } finally {
        progress.stop();
      }
    },
  );
}
