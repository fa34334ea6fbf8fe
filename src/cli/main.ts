#!/usr/bin/env node
/** The kensa command line: one module per verb, each thin (parse, call the library, print). */
import { CommanderError, type Command } from 'commander';
import { removePendingTemporaryFiles } from '../io/atomic.js';
import { releaseLocks } from '../pipeline/outputs/paths.js';
import { LANGUAGES, setLanguage, type Language } from '../i18n.js';
import { KensaError } from '../util/errors.js';
import { buildProgram } from './program.js';
import { takeSignal } from './signals.js';

/** The known verb (and sub-verb) a command line names, for "see kensa classify train --help". */
function verbOf(argv: string[], program: Command): string {
  const words: string[] = [];
  let command: Command | undefined = program;
  for (const a of argv) {
    command = command?.commands.find((c) => c.name() === a);
    if (!command) break;
    words.push(a);
  }
  return words.join(' ');
}

/** What to add to a usage error: a full-width space an IME slipped in, and where the options are told. */
export function usageHints(argv: string[], program: Command = buildProgram()): string[] {
  const hints: string[] = [];
  const wide = argv.find((a) => a.includes('\u3000'));
  if (wide !== undefined)
    hints.push(
      `the command line holds a full-width space (U+3000, as a Japanese IME types it) in '${wide}': ` +
        'options are separated by ordinary spaces; retype it with the IME off (コマンドに全角スペースがあります。半角スペースで区切ってください)',
    );
  const verb = verbOf(argv, program);
  hints.push(verb ? `see kensa ${verb} --help for the options` : 'see kensa --help for the commands');
  return hints;
}

/**
 * Takes `--lang ja|en` (anywhere on the command line) out of it and sets the language of what is printed;
 * without it, the locale's. Returns the rest of the command line.
 */
export function takeLanguage(argv: string[]): string[] {
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = a === '--lang' ? argv[++i] : a.startsWith('--lang=') ? a.slice(7) : undefined;
    if (value === undefined && a !== '--lang') {
      rest.push(a);
      continue;
    }
    if (!LANGUAGES.includes(value as Language))
      throw new KensaError('E_ARGUMENT', `Expected ja or en for --lang but received '${value ?? ''}'`);
    setLanguage(value as Language);
  }
  return rest;
}

export async function main(args: string[]): Promise<number> {
  let argv: string[];
  try {
    argv = takeLanguage(args);
  } catch (error) {
    process.stderr.write(`kensa: ${(error as Error).message}\n`);
    return 2;
  }
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    const hint = () => {
      for (const h of usageHints(argv, program)) process.stderr.write(`kensa: ${h}\n`);
    };
    if (error instanceof CommanderError) {
      if (error.exitCode === 0) return 0;
      hint();
      return 2;
    }
    if (error instanceof KensaError) {
      process.stderr.write(`kensa: ${error.message}\n`);
      if (error.code !== 'E_ARGUMENT') return 1;
      if (!error.message.includes('--help')) hint();
      return 2;
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
