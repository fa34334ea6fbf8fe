import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const BIN = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const run = (...args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, KENSA_OFFLINE: '1' },
  });

describe('kensa command line (built dist/)', () => {
  it('--help lists the commands', () => {
    const r = run('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Usage: kensa');
    expect(r.stdout).toContain('backbones');
    expect(r.stdout).toContain('fetch-weights');
  });

  it('--version prints the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(execFileSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' }).trim()).toBe(pkg.version);
  });

  it('backbones --json lists the five architectures', () => {
    const r = run('backbones', '--json');
    const names = JSON.parse(r.stdout).backbones.map((b: { name: string }) => b.name);
    expect(names).toEqual([
      'efficientnet_lite0',
      'efficientnet_lite1',
      'efficientnet_lite2',
      'resnet18',
      'wide_resnet50_2',
    ]);
  });

  it('backbones as a table names the cache and the way to bring another network', () => {
    const r = run('backbones');
    expect(r.stdout).toMatch(/^efficientnet_lite0 .*\(default\)$/m);
    expect(r.stdout).toContain('--backbone-onnx FILE --layers A,B,C');
  });

  it('an unknown backbone is an error that lists the choices, with exit code 2', () => {
    const r = run('fetch-weights', 'vgg16');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      "kensa: unknown backbone 'vgg16'; choose one of: efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, resnet18, wide_resnet50_2",
    );
  });

  it('a usage error names the verb’s help; a full-width space typed by an IME gets a hint', () => {
    let r = run('predict', '--model\u3000m.kensa', '--out', 'x', 'y');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      "full-width space (U+3000, as a Japanese IME types it) in '--model\u3000m.kensa'",
    );
    expect(r.stderr).toContain('kensa: see kensa predict --help for the options');
    r = run('classify', 'train', '--copies', '99', '--out', 'x');
    expect(r.stderr).toContain('kensa: see kensa classify train --help for the options');
    r = run('tran');
    expect(r.stderr).toContain('kensa: see kensa --help for the commands');
  });

  it('speaks Japanese with --lang ja or a Japanese locale: help and summaries', () => {
    let r = run('--lang', 'ja', 'predict', '--help');
    expect(r.stdout).toContain('画像（ファイル、フォルダ、パターン）を検査');
    expect(r.stdout).toContain('--batch <n>            バックボーンの 1 バッチの最大入力数');
    r = spawnSync(process.execPath, [BIN, 'watch', '--help'], {
      encoding: 'utf8',
      env: { ...process.env, LC_ALL: '', LC_MESSAGES: '', LANG: 'ja_JP.UTF-8' },
    });
    expect(r.stdout).toContain('ドロップフォルダ');
    r = run('--lang', 'en', 'watch', '--help');
    expect(r.stdout).toContain('inspect every image that appears in a drop folder');
    r = run('--lang', 'fr', 'train', '--help');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("Expected ja or en for --lang but received 'fr'");
  });

  it('watch refuses a bad --move-to and a drop folder that is not there, before any work', () => {
    let r = run('watch', '--model', 'm.kensa', '--out', 'o', '--move-to', 'only-one', '.');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      "Expected two folders separated by a comma (OK_DIR,NG_DIR) for --move-to but received 'only-one'",
    );
    r = run('watch', '--model', 'm.kensa', '--out', 'o', '/nonexistent/drop');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('/nonexistent/drop: the folder to watch does not exist');
  });

  it('an unknown command exits with 2', () => {
    expect(run('frobnicate').status).toBe(2);
  });
});
