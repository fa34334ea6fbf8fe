/** kensa report: write report.html for a results folder of kensa test or kensa predict. */
import type { Command } from 'commander';
import { tr } from '../i18n.js';
import { writeReport } from '../report/html.js';

export function register(program: Command): void {
  program
    .command('report')
    .description(
      tr(
        'write report.html for a results folder of kensa test or kensa predict (open it in a browser)',
        'kensa test か kensa predict の結果フォルダに report.html を書き出す（ブラウザで開く）',
      ),
    )
    .argument(
      '<results>',
      tr('the --out folder of kensa test or kensa predict', 'kensa test か kensa predict の --out フォルダ'),
    )
    .action(async (results: string) => {
      console.log(`report: ${await writeReport(results)}`);
    });
}
