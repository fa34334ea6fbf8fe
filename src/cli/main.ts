#!/usr/bin/env node
/** The kensa command line: one module per verb, each thin (parse, call the library, print). */
import { CommanderError } from 'commander';
import { removePendingTemporaryFiles } from '../io/atomic.js';
import { releaseLocks } from '../pipeline/outputs/paths.js';
import { KensaError } from '../util/errors.js';
import { buildProgram } from './program.js';
import { takeSignal } from './signals.js';

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
