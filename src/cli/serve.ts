/** kensa serve: the inspection service (HTTP), until SIGTERM or Ctrl-C. */
import { readFileSync } from 'node:fs';
import { tr } from '../i18n.js';
import { basename, extname } from 'node:path';
import type { Command } from 'commander';
import { readProblem } from '../image/load.js';
import { InspectionService, SERVE_DEFAULTS, SERVE_NUMBERS } from '../serve/server.js';
import { KensaError } from '../util/errors.js';
import { addOptions, threshold } from './options.js';
import { setGracefulStop } from './signals.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `FILE` or `NAME=FILE` → a model's name (default: the file's name without extension) and file. */
export function modelSpec(spec: string): { name: string; model: string } {
  const eq = spec.indexOf('=');
  // a file name may hold '=': only a name that could be a URL segment counts as a name
  if (eq > 0 && /^[A-Za-z0-9._-]+$/.test(spec.slice(0, eq)))
    return { name: spec.slice(0, eq), model: spec.slice(eq + 1) };
  return {
    name:
      basename(spec, extname(spec))
        .replace(/[^A-Za-z0-9._-]/g, '_')
        .slice(0, 64) || 'model',
    model: spec,
  };
}

/**
 * The bearer token from its file: one line of at least 16 visible ASCII characters. A token no client
 * could send (several lines, spaces, non-ASCII characters) is refused at start, not discovered later as
 * a 401 for everyone.
 */
export function readToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new KensaError('E_IO', readProblem((error as NodeJS.ErrnoException).code, 'a token file'), {
      file,
    });
  }
  const how =
    'the token file must hold one secret of at least 16 characters (e.g. openssl rand -hex 32 > FILE)';
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length > 1)
    throw new KensaError('E_ARGUMENT', `${how}; this one has ${lines.length} lines`, { file });
  const token = text.trim();
  // what an HTTP header can carry in a bearer token: visible ASCII, no spaces
  if (!/^[\x21-\x7e]*$/.test(token))
    throw new KensaError(
      'E_ARGUMENT',
      `${how}; this one holds spaces or characters outside visible ASCII, which no client can send in an Authorization header`,
      { file },
    );
  if (token.length < 16) throw new KensaError('E_ARGUMENT', how, { file });
  return token;
}

export function register(program: Command): void {
  const command = program
    .command('serve')
    .description(
      tr(
        'inspection service over HTTP: POST an image to /v1/inspect, get OK/NG, score and boxes (micro-batched)',
        'HTTP の検査サービス: 画像を /v1/inspect に POST すると OK/NG、スコア、枠を返す（マイクロバッチ）',
      ),
    )
    .requiredOption(
      '--model <[name=]file>',
      tr(
        'model file from kensa train; repeat for more models (served at /v1/models/NAME/inspect; the first is the default)',
        'kensa train で作ったモデルファイル。繰り返すと複数のモデル（/v1/models/NAME/inspect。最初のものが既定）',
      ),
      collect,
    )
    .option(
      '--host <address>',
      `address to listen on (other than loopback needs --token-file)`,
      SERVE_DEFAULTS.host,
    )
    .option(
      '--token-file <file>',
      tr(
        'file holding the bearer token every request must carry',
        'すべてのリクエストに必要な bearer トークンを書いたファイル',
      ),
    )
    .option(
      '--threshold <t>',
      tr(
        'fpr0, f1, quantile, custom or a number (default: custom when the model has one, else fpr0)',
        'fpr0、f1、quantile、custom、または数値（既定: モデルに custom があればそれ、なければ fpr0）',
      ),
      threshold,
    )
    .option(
      '--save-ng <dir>',
      tr(
        'keep each NG image and its JSON answer in this folder',
        'NG 画像とその JSON 応答をこのフォルダに保存',
      ),
    )
    .option(
      '--weights <file>',
      tr(
        'backbone weights file (default: the cache, else download)',
        'バックボーンの重みファイル（既定: キャッシュ、なければダウンロード）',
      ),
    );
  addOptions(command, [...SERVE_NUMBERS, 'pixelLimit', 'mmPerPixel', 'minDefectMm', 'overlayOpacity']).action(
    async (o) => {
      const service = await InspectionService.start({
        models: (o.model as string[]).map(modelSpec),
        host: o.host,
        ...Object.fromEntries(SERVE_NUMBERS.map((n) => [n, o[n]])),
        token: o.tokenFile ? readToken(o.tokenFile) : undefined,
        threshold: o.threshold,
        pixelLimit: o.pixelLimit,
        mmPerPixel: o.mmPerPixel,
        minDefectMm: o.minDefectMm,
        overlayOpacity: o.overlayOpacity,
        saveNg: o.saveNg,
        weights: o.weights,
        onPlan: (line) => process.stderr.write(`kensa: memory: ${line}\n`),
        onLog: (line) => process.stderr.write(`kensa: ${line}\n`),
      });
      await new Promise<void>((resolve, reject) => {
        setGracefulStop((signal) => {
          process.stderr.write(`kensa: ${signal}: finishing the requests in flight, then exiting\n`);
          service.close().then(resolve, reject);
        });
      });
      process.stderr.write('kensa: stopped\n');
    },
  );
}
