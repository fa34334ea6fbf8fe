/**
 * kensa serve from the command line (built dist/), against a model trained here on generated data:
 * the verdicts equal kensa predict's, a short autocannon load has no errors, overload answers 503 with
 * Retry-After and recovers, every kind of bad input gets its 4xx while the service keeps serving (a fuzz
 * of random bodies included), the token guards every route but the health checks, evidence is kept, the
 * metrics count what happened, and SIGTERM finishes the requests in flight and exits 0.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import fc from 'fast-check';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSyntheticDataset } from '../../src/data/synthetic.js';
import { BIN, kensa, post, serve as serveModel, type Server } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'kensa-serve-'));
const data = join(dir, 'data');
const model = join(dir, 'm.kensa');
const serve = (...args: string[]) => serveModel(model, ...args);

let images: string[];
let predicted: Map<string, { verdict: string; score: number; regions: unknown[] }>;
let server: Server;

beforeAll(async () => {
  await makeSyntheticDataset(data, { size: 96, train: 16, testGood: 4, testPerDefect: 4, seed: 21 });
  kensa('train', '--data', data, '--size', '96', '--out', model);
  const out = join(dir, 'predict');
  kensa('predict', '--model', model, '--out', out, '--no-overlays', join(data, 'test'));
  const json = JSON.parse(readFileSync(join(out, 'predictions.json'), 'utf8'));
  predicted = new Map(json.predictions.map((p: { file: string }) => [p.file, p]));
  images = [...predicted.keys()];
  server = await serve(
    ...['--queue', '16', '--max-batch', '4', '--timeout-ms', '3000', '--max-body-mb', '1'],
    ...['--pixel-limit', '20000'],
  );
});

afterAll(() => {
  server?.child.kill('SIGKILL');
});

describe('kensa serve', () => {
  it('answers health, readiness and the model list', async () => {
    expect(await (await fetch(`${server.url}/healthz`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${server.url}/readyz`)).json()).toEqual({ status: 'ready', models: ['m'] });
    const models = await (await fetch(`${server.url}/v1/models`)).json();
    expect(models.default).toBe('m');
    expect(models.models[0]).toMatchObject({ name: 'm', method: 'ensemble', threshold: { name: 'fpr0' } });
  });

  it("gives kensa predict's verdicts, scores and regions, sent together (micro-batched) or one by one", async () => {
    const answers = await Promise.all(
      images.map(async (file) => {
        const r = await post(`${server.url}/v1/inspect`, readFileSync(file));
        expect(r.status).toBe(200);
        return [file, await r.json()] as const;
      }),
    );
    expect(Math.max(...answers.map(([, a]) => a.batch_size))).toBeGreaterThan(1);
    for (const [file, a] of answers) {
      const p = predicted.get(file)!;
      expect(a.verdict).toBe(p.verdict);
      expect(Math.abs(a.score - p.score) / p.score).toBeLessThan(1e-4);
      expect(a.regions.length).toBe(p.regions.length);
    }
    // multipart with a file part, on the named model's route, with the heat map
    const form = new FormData();
    form.append('image', new Blob([readFileSync(images[0])]), 'part.png');
    const r = await post(`${server.url}/v1/models/m/inspect?heatmap=1`, form);
    const a = await r.json();
    expect(a.file).toBe('part.png');
    expect(a.verdict).toBe(predicted.get(images[0])!.verdict);
    const png = await sharp(Buffer.from(a.heatmap_png, 'base64')).metadata();
    expect([png.format, png.width, png.height]).toEqual(['png', 96, 96]);
  });

  it('bad input gets a clear 4xx and the service keeps serving', async () => {
    const good = readFileSync(images[0]);
    const huge = await sharp({ create: { width: 1200, height: 1200, channels: 3, background: '#888' } })
      .png({ compressionLevel: 0 })
      .toBuffer();
    const wide = await sharp({ create: { width: 400, height: 100, channels: 3, background: '#888' } })
      .png()
      .toBuffer();
    const cases: [string, Promise<Response>, number, RegExp][] = [
      ['over the pixel limit', post(`${server.url}/v1/inspect`, wide), 413, /more than 20000 pixels/],
      ['empty body', post(`${server.url}/v1/inspect`, new Uint8Array(0)), 400, /body is empty/],
      ['not an image', post(`${server.url}/v1/inspect`, 'hello'), 415, /cannot decode/],
      [
        'truncated',
        post(`${server.url}/v1/inspect`, good.subarray(0, good.length / 2)),
        422,
        /cannot decode/,
      ],
      ['over the body limit', post(`${server.url}/v1/inspect`, huge), 413, /larger than the limit \(1 MB/],
      [
        'malformed multipart',
        post(
          `${server.url}/v1/inspect`,
          '--xx\r\nContent-Disposition: form-data; name="a"; filename="a"\r\n\r\nab',
          {
            'content-type': 'multipart/form-data; boundary=xx',
          },
        ),
        400,
        /multipart/i,
      ],
      [
        'multipart without a file',
        post(
          `${server.url}/v1/inspect`,
          '--xx\r\nContent-Disposition: form-data; name="a"\r\n\r\nab\r\n--xx--\r\n',
          {
            'content-type': 'multipart/form-data; boundary=xx',
          },
        ),
        400,
        /no file part/,
      ],
      ['unknown model', post(`${server.url}/v1/models/other/inspect`, good), 404, /no model named 'other'/],
      ['unknown route', post(`${server.url}/v2/inspect`, good), 404, /no route/],
    ];
    for (const [what, response, status, message] of cases) {
      const r = await response;
      expect(r.status, what).toBe(status);
      expect((await r.json()).error.message, what).toMatch(message);
    }
    // random bodies (and random damage to a real image): always a 4xx, never a crash
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 2048 }),
          fc
            .tuple(fc.nat(good.length - 1), fc.uint8Array({ minLength: 1, maxLength: 16 }))
            .map(([at, junk]) => {
              const b = Buffer.from(good);
              b.set(junk.subarray(0, b.length - at), at);
              return b.subarray(0, at + junk.length);
            }),
        ),
        async (body) => {
          const r = await post(`${server.url}/v1/inspect`, body);
          await r.arrayBuffer();
          expect(r.status === 200 || (r.status >= 400 && r.status < 500)).toBe(true);
        },
      ),
      { numRuns: 60, seed: 5 },
    );
    expect((await post(`${server.url}/v1/inspect`, good)).status).toBe(200);
  });

  it('a slow client (slow-loris) is cut off at the request time limit', async () => {
    const { port } = new URL(server.url);
    const start = Date.now();
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write('POST /v1/inspect HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc');
      });
      let got = '';
      socket.on('data', (d) => (got += d));
      socket.on('close', () => resolve(got));
    });
    expect(answer).toMatch(/^HTTP\/1.1 408/);
    // in the service's one error shape, as every other refusal
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
      error: {
        status: 408,
        message: 'the request did not arrive within the time limit (3000 ms; --timeout-ms)',
      },
    });
    expect(Date.now() - start).toBeLessThan(3000 + 2500);
    expect((await post(`${server.url}/v1/inspect`, readFileSync(images[0]))).status).toBe(200);
  });

  it('a short load (autocannon, 4 clients) has no errors; the metrics count it', async () => {
    const result = await autocannon({
      url: `${server.url}/v1/inspect`,
      connections: 4,
      duration: 3,
      requests: images.slice(0, 8).map((f) => ({ method: 'POST', body: readFileSync(f) })),
    });
    expect(result.errors).toBe(0);
    expect(result.non2xx).toBe(0);
    expect(result.requests.total).toBeGreaterThan(10);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/kensa_requests_total\{model="m",outcome="client_error"\} \d+/);
    const counted = [...text.matchAll(/kensa_requests_total\{model="m",outcome="(ok|ng)"\} (\d+)/g)];
    expect(counted.reduce((s, m) => s + Number(m[2]), 0)).toBeGreaterThan(result.requests.total);
    expect(text).toMatch(/kensa_batch_size_count\{model="m"\} \d+/);
    expect(text).toMatch(/kensa_in_flight_requests \d+/);
  });
});

describe('kensa serve under overload, with a token, evidence and SIGTERM', () => {
  it('more clients than the queue: 503 with Retry-After, no crash, recovery', async () => {
    const s = await serve('--queue', '2', '--max-batch', '2');
    try {
      const load = autocannon({
        url: `${s.url}/v1/inspect`,
        connections: 24,
        duration: 3,
        requests: [{ method: 'POST', body: readFileSync(images[0]) }],
      });
      // during the load, one more burst: its refusals say when to come back
      await new Promise((r) => setTimeout(r, 1000));
      const burst = await Promise.all(
        Array.from({ length: 16 }, () => post(`${s.url}/v1/inspect`, readFileSync(images[0]))),
      );
      const refused = burst.filter((r) => r.status === 503);
      expect(refused.length).toBeGreaterThan(0);
      expect(refused[0].headers.get('retry-after')).toBe('1');
      expect((await refused[0].json()).error.message).toMatch(/queue is full \(2 images waiting\)/);
      const result = await load;
      expect(result.statusCodeStats?.['503']?.count).toBeGreaterThan(0);
      expect(result.statusCodeStats?.['200']?.count).toBeGreaterThan(0);
      expect(result.errors).toBe(0);
      const text = await (await fetch(`${s.url}/metrics`)).text();
      expect(text).toMatch(/outcome="overloaded"\} [1-9]/);
      // the load has gone: once the requests left in flight are answered (well within 2 s), it serves again
      let status = 0;
      const since = Date.now();
      while (status !== 200 && Date.now() - since < 2000) {
        status = (await post(`${s.url}/v1/inspect`, readFileSync(images[0]))).status;
        if (status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe(200);
    } finally {
      s.child.kill('SIGKILL');
    }
  });

  it('binding beyond loopback needs a token; the token guards all but the health checks; two models', async () => {
    const refused = spawnSync(process.execPath, [BIN, 'serve', '--model', model, '--host', '0.0.0.0'], {
      encoding: 'utf8',
    });
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('give a bearer token with --token-file');
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'a-secret-of-enough-length\n');
    const evidence = join(dir, 'evidence');
    const s = await serve(
      ...['--token-file', tokenFile, '--save-ng', evidence, '--threshold', '0.000001'],
      ...['--model', `second=${model}`],
    );
    try {
      expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${s.url}/metrics`)).status).toBe(401);
      const body = readFileSync(images[0]);
      expect((await post(`${s.url}/v1/inspect`, body)).status).toBe(401);
      expect((await post(`${s.url}/v1/inspect`, body, { authorization: 'Bearer wrong' })).status).toBe(401);
      const r = await post(`${s.url}/v1/inspect`, body, {
        authorization: 'Bearer a-secret-of-enough-length',
      });
      const a = await r.json();
      expect(a.verdict).toBe('NG');
      const kept = readdirSync(evidence).sort();
      expect(kept).toHaveLength(2);
      expect(kept[0]).toMatch(/-m-[0-9a-f]{12}\.json$/);
      expect(readFileSync(join(evidence, kept[1])).equals(body)).toBe(true);
      expect(JSON.parse(readFileSync(join(evidence, kept[0]), 'utf8')).score).toBe(a.score);
      // a path in the request is never used as one: only its last part is echoed; evidence is named by hash
      const form = new FormData();
      form.append('image', new Blob([body]), '../../evil.png');
      const b = await (
        await post(`${s.url}/v1/inspect`, form, { authorization: 'Bearer a-secret-of-enough-length' })
      ).json();
      expect(b.file).toBe('evil.png');
      expect(readdirSync(evidence)).toHaveLength(4);
      expect(readdirSync(evidence).some((f) => f.includes('evil'))).toBe(false);
      expect(readdirSync(join(evidence, '..')).some((f) => f.includes('evil'))).toBe(false);
      // a second model, by its name
      const auth = { authorization: 'Bearer a-secret-of-enough-length' };
      const models = await (await fetch(`${s.url}/v1/models`, { headers: auth })).json();
      expect(models.models.map((x: { name: string }) => x.name)).toEqual(['m', 'second']);
      const second = await (await post(`${s.url}/v1/models/second/inspect`, body, auth)).json();
      expect([second.model, second.score]).toEqual(['second', a.score]);
    } finally {
      s.child.kill('SIGKILL');
    }
  });

  it('SIGTERM: the requests in flight are answered, then the process exits 0', async () => {
    // the batcher holds the six images for a batch (up to 1 s) while the signal comes: they are in flight
    const s = await serve('--max-wait-ms', '1000', '--max-batch', '8');
    const inFlight = images.slice(0, 6).map((f) => post(`${s.url}/v1/inspect`, readFileSync(f)));
    await new Promise((r) => setTimeout(r, 400));
    s.child.kill('SIGTERM');
    const statuses = await Promise.all(inFlight.map(async (r) => (await r).status));
    expect(statuses).toEqual(statuses.map(() => 200));
    expect(await s.exit).toBe(0);
    expect(s.log()).toContain('SIGTERM: finishing the requests in flight');
  });
});
