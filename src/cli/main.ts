#!/usr/bin/env node
/** The kensa command line: one module per verb, each thin (parse, call the library, print). */
import { Command, CommanderError } from 'commander';
import { removePendingTemporaryFiles } from '../io/atomic.js';
import { releaseLocks } from '../pipeline/outputs/paths.js';
import { KensaError } from '../util/errors.js';
import { KENSA_VERSION } from '../version.js';
import * as backbones from './backbones.js';
import * as classify from './classify.js';
import * as demo from './demo.js';
import * as exportVerb from './export.js';
import * as fetchWeights from './fetch-weights.js';
import * as predict from './predict.js';
import * as report from './report.js';
import * as serve from './serve.js';
import { takeSignal } from './signals.js';
import * as test from './test.js';
import * as threshold from './threshold.js';
import * as train from './train.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('kensa')
    .description(
      'kensa (検査): visual anomaly inspection — train on good parts only, find and localise defects.',
    )
    .version(KENSA_VERSION, '-v, --version')
    .showHelpAfterError('(run kensa --help for the commands)')
    .exitOverride();
  for (const verb of [
    demo,
    train,
    test,
    predict,
    serve,
    exportVerb,
    classify,
    report,
    threshold,
    backbones,
    fetchWeights,
  ])
    verb.register(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof KensaError) {
      process.stderr.write(`kensa: ${error.message}\n`);
      return error.code === 'E_ARGUMENT' ? 2 : 1;
    }
    process.stderr.write(`kensa: unexpected error: ${(error as Error).stack ?? error}\n`);
    return 1;
  }
}

// An interrupt leaves no half-written file: every output is written to a temporary file and renamed, and
// the temporary files of writes still in progress are removed here. Files already finished stay. SIGHUP
// (the terminal was closed) is an interrupt like the others; results folders' locks go with the process.
const EXIT_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
for (const signal of Object.keys(EXIT_CODES) as (keyof typeof EXIT_CODES)[]) {
  process.on(signal, () => {
    if (takeSignal(signal)) return;
    removePendingTemporaryFiles();
    releaseLocks();
    try {
      process.stderr.write(
        `\nkensa: interrupted (${signal}); finished files are kept, run the command again to complete the job\n`,
      );
    } catch {
      // the terminal may be gone (SIGHUP)
    }
    process.exit(EXIT_CODES[signal]);
  });
}
process.on('exit', releaseLocks);

process.exitCode = await main(process.argv.slice(2));
