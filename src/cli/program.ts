/** The kensa program: every verb registered on one commander program (main.ts runs it). */
import { Command } from 'commander';
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
import * as watch from './watch.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('kensa')
    .description(
      'kensa (検査): visual anomaly inspection — train on good parts only, find and localise defects.',
    )
    .version(KENSA_VERSION, '-v, --version')
    .exitOverride();
  for (const verb of [
    demo,
    train,
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
