/** kensa report: write report.html for a results folder of kensa test or kensa predict. */
import type { Command } from 'commander';
import { writeReport } from '../report/html.js';

export function register(program: Command): void {
  program
    .command('report')
    .description(
      'write report.html for a results folder of kensa test or kensa predict (open it in a browser)',
    )
    .argument('<results>', 'the --out folder of kensa test or kensa predict')
    .action(async (results: string) => {
      console.log(`report: ${await writeReport(results)}`);
    });
}
