/**
 * The service's bounds and its refusals: the bytes being received (all clients together), raster images
 * only (an SVG's script never reaches the evidence folder), which multipart limit was hit, the bearer
 * scheme in any case, token files no client could match, loopback decided by resolving the name, and
 * every refusal — Node's and fastify's own included — in the one documented error shape.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { DeadlineError } from '../../src/serve/batcher.js';
import { InspectionService, isLoopback } from '../../src/serve/server.js';
import { BIN, kensa, post, serve, type Server } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kensa-serve-limits-'));
const data = join(dir, 'data');
const model = join(dir, 'm.kensa');
const evidence = join(dir, 'evidence');
const tokenFile = join(dir, 'token');
const TOKEN = 'a-secret-of-enough-length';
const auth = { authorization: `Bearer ${TOKEN}` };
let server: Server;
let image: Buffer<ArrayBuffer>;

const SVG = Buffer.from(
  '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><script>alert("evidence")</script>' +
    '<rect width="64" height="64" fill="#888"/></svg>',
);

/** Opens a connection and sends the head of a POST (and `first` bytes of its body), holding the rest. */
function holdUpload(
  url: string,
  head: string,
  first = '',
): Promise<{ socket: Socket; answer: Promise<string> }> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write(`${head}\r\n${first}`);
      let got = '';
      const answer = new Promise<string>((done) => {
        socket.on('data', (d) => {
          got += d;
          if (got.includes('\r\n\r\n') && /\}\s*$/.test(got)) done(got);
        });
        socket.on('close', () => done(got));
      });
      resolve({ socket, answer });
    });
  });
}

const headOf = (length?: number) =>
  `POST /v1/inspect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
  (length === undefined ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${length}\r\n`);

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 64, train: 10, testGood: 2, testPerDefect: 2, seed: 4 });
  kensa('train', '--data', data, '--size', '64', '--out', model);
  image = readFileSync(join(data, 'test', 'good', '000.png'));
  writeFileSync(tokenFile, `${TOKEN}\n`);
  server = await serve(
    model,
    ...['--max-body-mb', '1', '--max-receiving-mb', '2', '--token-file', tokenFile],
    ...['--save-ng', evidence, '--threshold', '0.000001'],
  );
});

afterAll(() => {
  server?.child.kill('SIGKILL');
});

describe('kensa serve: bounds and refusals', () => {
  it('bounds the bytes being received by all clients together: past it, 503 with Retry-After before the body is read', async () => {
    // two uploads of 1 MB in flight hold 1.9 MiB of the 2 MiB: a third of 0.5 MB is refused at once
    const a = await holdUpload(server.url, headOf(1_000_000), 'x'.repeat(1000));
    const b = await holdUpload(server.url, headOf(1_000_000), 'x'.repeat(1000));
    await new Promise((r) => setTimeout(r, 100));
    const third = await holdUpload(server.url, headOf(500_000), 'x'.repeat(1000));
    const refused = await third.answer;
    expect(refused).toMatch(/^HTTP\/1.1 503/);
    expect(refused).toMatch(/\r\nretry-after: 1\r\n/i);
    expect(JSON.parse(refused.slice(refused.indexOf('\r\n\r\n') + 4)).error.message).toBe(
      'the service is receiving 2 MB of images already (at most 2 MB at once; --max-receiving-mb); retry shortly',
    );
    // a body without Content-Length counts as the largest allowed body (1 MB): refused too
    const c = await holdUpload(server.url, headOf());
    expect(await c.answer).toMatch(/^HTTP\/1.1 503/);
    // a small image still fits beside the held uploads
    expect((await post(`${server.url}/v1/inspect`, image, auth)).status).toBe(200);
    // when the held uploads go, their bytes are given back
    a.socket.destroy();
    b.socket.destroy();
    await new Promise((r) => setTimeout(r, 100));
    const ok = await post(`${server.url}/v1/inspect`, image, auth);
    expect(ok.status).toBe(200);
    // and a finished request gives its bytes back too: many in a row all pass
    for (let i = 0; i < 6; i++)
      expect((await post(`${server.url}/v1/inspect`, image, auth)).status).toBe(200);
  });

  it('takes raster images only: an SVG (with a script) is refused, as a body or a file part, and never kept', async () => {
    const before = readdirSync(evidence).length;
    const raw = await post(`${server.url}/v1/inspect`, SVG, { ...auth, 'content-type': 'image/svg+xml' });
    expect(raw.status).toBe(415);
    expect((await raw.json()).error.message).toContain('this is an SVG drawing, not a raster photograph');
    const form = new FormData();
    form.append('image', new Blob([SVG]), 'part.png');
    const part = await post(`${server.url}/v1/inspect`, form, auth);
    expect(part.status).toBe(415);
    expect(readdirSync(evidence).length).toBe(before);
    expect(readdirSync(evidence).some((f) => f.endsWith('.svg'))).toBe(false);
    // a real NG image is kept, as a raster file
    expect((await post(`${server.url}/v1/inspect`, image, auth)).status).toBe(200);
    expect(readdirSync(evidence).some((f) => f.endsWith('.png'))).toBe(true);
  });

  it('a multipart body past a limit says which limit, not "larger than 64 MB"', async () => {
    const two = new FormData();
    two.append('a', new Blob([image]), 'a.png');
    two.append('b', new Blob([image]), 'b.png');
    const fields = new FormData();
    for (let i = 0; i < 9; i++) fields.append(`f${i}`, 'v');
    fields.append('image', new Blob([image]), 'a.png');
    for (const [form, message] of [
      [two, 'the multipart body has more than 1 file part: send one image per request'],
      [fields, 'the multipart body has more than 8 fields besides the file'],
    ] as const) {
      const r = await post(`${server.url}/v1/inspect`, form, auth);
      expect(r.status).toBe(413);
      expect((await r.json()).error.message).toBe(message);
    }
  });

  it('the bearer scheme in any case; every other refusal in the error shape (bad URL, 431, 401)', async () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER'])
      expect(
        (await post(`${server.url}/v1/inspect`, image, { authorization: `${scheme} ${TOKEN}` })).status,
      ).toBe(200);
    expect((await post(`${server.url}/v1/inspect`, image, { authorization: `Basic ${TOKEN}` })).status).toBe(
      401,
    );
    const badUrl = await post(`${server.url}/v1/models/%E0%A4%A/inspect`, image, auth);
    expect(badUrl.status).toBe(400);
    expect((await badUrl.json()).error).toMatchObject({
      status: 400,
      message: expect.stringContaining('URL'),
    });
    const { port } = new URL(server.url);
    const big = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () =>
        socket.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`),
      );
      let got = '';
      socket.on('data', (d) => (got += d));
      socket.on('close', () => resolve(got));
      socket.on('error', () => resolve(got));
    });
    expect(big).toMatch(/^HTTP\/1.1 431/);
    expect(JSON.parse(big.slice(big.indexOf('\r\n\r\n') + 4)).error.status).toBe(431);
  });

  it('refuses at start a token file no client could match, a folder, and a host that only looks like loopback', () => {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [BIN, 'serve', '--model', model, '--port', '0', ...args], {
        encoding: 'utf8',
      });
    const lines = join(dir, 'two-lines');
    writeFileSync(lines, `${TOKEN}\nsecond-line-of-the-token\n`);
    const accented = join(dir, 'accented');
    writeFileSync(accented, 'ein-geheimes-passwört-0123\n');
    const spaced = join(dir, 'spaced');
    writeFileSync(spaced, 'a secret with spaces in it\n');
    const folder = join(dir, 'token-folder');
    mkdirSync(folder);
    for (const [file, status, message] of [
      [
        lines,
        2,
        `${lines}: the token file must hold one secret of at least 16 characters (e.g. openssl rand -hex 32 > FILE); this one has 2 lines`,
      ],
      [accented, 2, 'holds spaces or characters outside visible ASCII, which no client can send'],
      [spaced, 2, 'holds spaces or characters outside visible ASCII'],
      [folder, 1, `${folder}: this is a folder, not a token file`],
    ] as const) {
      const r = run('--token-file', file);
      expect(r.status, file).toBe(status);
      expect(r.stderr).toContain(message);
    }
    const r = run('--host', '127.attacker.example');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      'binding to 127.attacker.example makes the service reachable from other machines',
    );
  });

  it('loopback is decided by the addresses a name resolves to, not by its spelling', async () => {
    for (const host of ['127.0.0.1', '127.5.6.7', '::1', '::ffff:127.0.0.1', 'localhost'])
      expect(await isLoopback(host), host).toBe(true);
    for (const host of [
      '127.attacker.example',
      '0.0.0.0',
      '10.1.2.3',
      '::',
      '128.0.0.1',
      'no-such-host.invalid',
    ])
      expect(await isLoopback(host), host).toBe(false);
  });

  it('a 504 says its time limit in whole milliseconds; a request while closing gets 503 in the error shape', async () => {
    expect(new DeadlineError(29977.936633999998).message).toBe(
      'no result within the request time limit (29978 ms); the service is busy, retry later',
    );
    const service = await InspectionService.start({ models: [{ name: 'm', model }], port: 0 });
    const closing = service.close();
    const r = await service.app.inject({ method: 'POST', url: '/v1/inspect', payload: image });
    await closing;
    expect(r.statusCode).toBe(503);
    expect(r.json()).toEqual({ error: { status: 503, message: expect.stringContaining('shutting down') } });
  });

  it('an interlaced 16-bit RGBA PNG is bounded by the bytes its decoding takes, not its pixels alone', async () => {
    // 3000×3000 at 16 bits × 4 channels, interlaced: 144 MB to decode, within a pixel limit of 10 M pixels
    const png = await sharp({ create: { width: 3000, height: 3000, channels: 4, background: '#808080ff' } })
      .toColourspace('rgb16')
      .png({ progressive: true, compressionLevel: 1 })
      .toBuffer();
    const s = await serve(model, '--pixel-limit', '10000000', '--port', '0');
    try {
      const r = await post(`${s.url}/v1/inspect`, png);
      expect(r.status).toBe(413);
      expect((await r.json()).error.message).toMatch(
        /decoding it takes 137 MB \(3000×3000, 4 channels of 16 bits, interlaced: decoded whole\)/,
      );
      // the same pixels as 8-bit RGB, not interlaced, pass
      const plain = await sharp({ create: { width: 3000, height: 3000, channels: 3, background: '#808080' } })
        .png({ compressionLevel: 1 })
        .toBuffer();
      expect((await post(`${s.url}/v1/inspect`, plain)).status).toBe(200);
    } finally {
      s.child.kill('SIGKILL');
    }
  });
});
