/** The kensa program: every verb registered on one commander program (main.ts runs it). */
import { Command, Help, type Option } from 'commander';
import { tr } from '../i18n.js';
import { KENSA_VERSION } from '../version.js';
import * as backbones from './backbones.js';
import * as classify from './classify.js';
import * as demo from './demo.js';
import * as exportVerb from './export.js';
import * as fetchWeights from './fetch-weights.js';
import * as predict from './predict.js';
import * as report from './report.js';
import * as serve from './serve.js';
import * as test from './test.js';
import * as threshold from './threshold.js';
import * as train from './train.js';
import * as updateVerb from './update.js';
import * as watch from './watch.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('kensa')
    .description(
      tr(
        'kensa (検査): visual anomaly inspection — train on good parts only, find and localise defects.',
        'kensa（検査）: 外観の異常検査 — 良品だけで学習し、欠陥を見つけて位置を示します。',
      ),
    )
    .version(KENSA_VERSION, '-v, --version')
    .addHelpText(
      'after',
      tr(
        '\nLanguage: --lang ja|en anywhere on the command line (default: the locale, LANG=ja_JP.UTF-8 for Japanese).',
        '\n言語: コマンドのどこかに --lang ja|en（既定はロケール。LANG=ja_JP.UTF-8 なら日本語）。',
      ),
    )
    .exitOverride()
    // an option whose help says its default already is not told it twice ("(default 5) (default: 5)")
    .configureHelp({
      optionDescription(option: Option) {
        const text = Help.prototype.optionDescription.call(this, option);
        return /\(default|（既定|既定 /.test(option.description ?? '')
          ? text.replace(/ \(default: [^()]*\)$/, '')
          : text;
      },
    });
  for (const verb of [
    demo,
    train,
    updateVerb,
    test,
    predict,
    watch,
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
