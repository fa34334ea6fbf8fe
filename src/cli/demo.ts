/** kensa demo: make a small synthetic data set, train, test and predict on it, and say where everything is. */
import { join, resolve } from 'node:path';
import { tr } from '../i18n.js';
import type { Command } from 'commander';
import { makeSyntheticDataset } from '../data/synthetic.js';
import { test } from '../pipeline/verbs/test.js';
import { predict } from '../pipeline/verbs/predict.js';
import { train } from '../pipeline/verbs/train.js';
import { progressReporter } from './progress.js';

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      tr(
        'run the whole workflow on a generated data set (textured surfaces with dust and scratches)',
        '生成したデータセット（ほこりと傷のある模様の表面）で一連の流れを実行',
      ),
    )
    .option(
      '--out <dir>',
      tr('folder for the data set and all results', 'データセットとすべての結果を置くフォルダ'),
      'kensa-demo',
    )
    .action(async (o) => {
      const out = resolve(o.out);
      const data = join(out, 'data');
      const progress = progressReporter();
      try {
        console.log(`1/4 making a synthetic data set in ${data}`);
        await makeSyntheticDataset(data);
        console.log('2/4 training on train/good');
        const model = join(out, 'model.kensa');
        await train({ data, out: model, onProgress: progress });
        progress.stop();
        console.log('3/4 testing on test/ (good, dust, scratch)');
        const { metrics } = await test({
          model,
          data,
          out: join(out, 'test'),
          saveModel: join(out, 'model-f1.kensa'),
          report: true,
          onProgress: progress,
        });
        progress.stop();
        console.log('4/4 predicting the test images as if they were new');
        const { predictions } = await predict({
          model,
          inputs: [join(data, 'test')],
          out: join(out, 'predict'),
          onProgress: progress,
        });
        progress.stop();
        const ng = predictions.filter((p) => p.verdict === 'NG').length;
        const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(3));
        console.log(
          `\nimage AUROC ${f(metrics.image_auroc)}, pixel AUROC ${f(metrics.pixel_auroc)}, AUPRO ${f(metrics.aupro)}; ${ng} of ${predictions.length} images NG at fpr0\n`,
        );
        console.log(`model:        ${model}`);
        console.log(`test results: ${join(out, 'test')}  (metrics.json, roc.png, pr.png, figures/)`);
        console.log(`report:       ${join(out, 'test', 'report.html')}  (open it in a browser)`);
        console.log(`predictions:  ${join(out, 'predict')}  (predictions.csv, ng_list.txt, overlays/)`);
      } finally {
        progress.stop();
      }
    });
}
