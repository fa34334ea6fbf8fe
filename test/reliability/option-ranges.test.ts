/**
 * The options of serve, export and classify are checked before any work: a bad value is a usage error
 * (exit code 2) that names the option and its range, given before any model is read (the model files
 * named here do not exist). The library refuses the same values.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { trainClassifier } from '../../src/pipeline/verbs/classify.js';
import { InspectionService } from '../../src/serve/server.js';

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'kensa-options-'));
const missing = join(dir, 'missing.kensa');
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

describe('bad option values of serve, export and classify', () => {
  const cases: [string[], string][] = [
    [
      ['serve', '--model', missing, '--queue', '0'],
      "Expected an integer between 1 and 100000 for --queue but received '0'",
    ],
    [
      ['serve', '--model', missing, '--max-batch', '300'],
      "Expected an integer between 1 and 256 for --max-batch but received '300'",
    ],
    [
      ['serve', '--model', missing, '--port', '70000'],
      "Expected an integer between 0 and 65535 for --port but received '70000'",
    ],
    [
      ['serve', '--model', missing, '--timeout-ms', '5'],
      "Expected an integer between 100 and 3600000 for --timeout-ms but received '5'",
    ],
    [
      ['serve', '--model', missing, '--max-body-mb', '0'],
      "Expected an integer between 1 and 4096 for --max-body-mb but received '0'",
    ],
    [
      ['serve', '--model', missing, '--max-wait-ms', '-1'],
      "Expected an integer between 0 and 10000 for --max-wait-ms but received '-1'",
    ],
    [
      ['export', '--model', missing, '--out', dir, '--max-batch', '0'],
      "Expected an integer between 1 and 1024 for --max-batch but received '0'",
    ],
    [
      ['export', '--model', missing, '--out', dir, '--max-queue-delay-ms', '20000'],
      "Expected an integer between 0 and 10000 for --max-queue-delay-ms but received '20000'",
    ],
    [
      ['classify', 'train', '--data', dir, '--out', missing, '--copies', '65'],
      "Expected an integer between 0 and 64 for --copies but received '65'",
    ],
    [
      ['classify', 'train', '--data', dir, '--out', missing, '--folds', '1'],
      "Expected an integer between 2 and 100 for --folds but received '1'",
    ],
    [
      ['classify', 'train', '--data', dir, '--out', missing, '--val-fraction', '1'],
      "Expected a number in (0, 1) for --val-fraction but received '1'",
    ],
    [
      ['classify', 'train', '--data', dir, '--out', missing, '--epochs', '0'],
      "Expected an integer between 1 and 100000 for --epochs but received '0'",
    ],
    [
      ['classify', 'train', '--data', dir, '--out', missing, '--patience', '0'],
      "Expected an integer between 1 and 100000 for --patience but received '0'",
    ],
    [
      ['classify', 'test', '--model', missing, '--data', dir, '--out', dir, '--threshold', '1.5'],
      "Expected fpr0, f1, quantile, custom or a number between 0 and 1 (not either end) for --threshold but received '1.5'",
    ],
    [
      ['classify', 'predict', '--model', missing, '--out', dir, '--threshold', '0', dir],
      "Expected fpr0, f1, quantile, custom or a number between 0 and 1 (not either end) for --threshold but received '0'",
    ],
  ];
  it.each(cases)('%j', (args, message) => {
    const r = run(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(message);
  });

  it('the library refuses them too, before reading any model or image', async () => {
    await expect(
      InspectionService.start({ models: [{ name: 'm', model: missing }], maxBatch: 0 }),
    ).rejects.toThrow(/integer between 1 and 256 for maxBatch/);
    await expect(
      trainClassifier({ data: dir, out: join(dir, 'c.classifier'), valFraction: 1 }),
    ).rejects.toThrow(/Expected a number in \(0, 1\) for valFraction but received 1 of type number/);
    await expect(trainClassifier({ data: dir, out: join(dir, 'c.classifier'), folds: 1 })).rejects.toThrow(
      /Expected an integer between 2 and 100 for folds but received 1/,
    );
    await expect(trainClassifier({ data: dir, out: join(dir, 'c.classifier'), copies: -1 })).rejects.toThrow(
      /copies/,
    );
  });
});
