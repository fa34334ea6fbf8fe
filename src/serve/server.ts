/**
 * kensa serve: the inspection service for a production line. One process holds one or more models in
 * memory; each photograph is POSTed as it is taken and answered with the verdict kensa predict would give
 * (the same Inspector, the same decisions module, the same threshold), its regions in original pixels and
 * optionally the heat-map overlay.
 *
 *   POST /v1/inspect                  the default (first) model
 *   POST /v1/models/{name}/inspect    a named model
 *   GET  /v1/models                   the models served, their thresholds and settings
 *   GET  /healthz                     the process answers
 *   GET  /readyz                      every model loaded and its backbone warm (503 until then)
 *   GET  /metrics                     Prometheus text
 *
 * Bodies: the image's bytes (any content type but multipart), or multipart/form-data with one file part.
 * Limits: body size (413), pixels (413), the whole request's time (receiving: 408 from Node's HTTP server,
 * which also ends slow-loris connections; scoring: 504), a bounded queue (503 with Retry-After). Bad input
 * is answered with a 4xx and a JSON error; it never reaches the scoring loop undecoded, and nothing in a
 * request names a server-side path (evidence files are named by time and content hash).
 *
 * fastify does the HTTP (routing, body limits, content-type parsing, graceful close), @fastify/multipart
 * the multipart bodies, prom-client the metrics.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { BlockList, isIP, type Socket } from 'node:net';
import { join } from 'node:path';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import sharp from 'sharp';
import { isBmp } from '../image/bmp.js';
import { DEFAULT_PIXEL_LIMIT, probeImageBytes } from '../image/load.js';
import { writeFileAtomic } from '../io/atomic.js';
import { keptScores } from '../pipeline/contracts/calibration.js';
import {
  decide,
  type SizeRule,
  type DefectRegion,
  type ThresholdChoice,
} from '../pipeline/contracts/decisions.js';
import { DRIFT_WINDOW, DriftMonitor, driftMessage } from '../pipeline/contracts/drift.js';
import { Inspector } from '../pipeline/engine/inspector.js';
import type { KensaModel } from '../pipeline/contracts/model-file.js';
import { decisionsOf } from '../pipeline/engine/run.js';
import { checkWritable } from '../pipeline/outputs/paths.js';
import { overlayOf } from '../pipeline/outputs/pictures.js';
import { getMethod } from '../models/registry.js';
import { KensaError } from '../util/errors.js';
import { checkOption, checkOptions, OPTIONS, type OptionName } from '../options.js';
import { ClientGoneError, ClosingError, DeadlineError, MicroBatcher, QueueFullError } from './batcher.js';

/** The service's numeric settings: their ranges and defaults are in the option table (src/options.ts). */
export const SERVE_NUMBERS = [
  'port',
  'maxBatch',
  'maxWaitMs',
  'queueLimit',
  'bodyLimitMb',
  'receivingMb',
  'timeoutMs',
] as const satisfies readonly OptionName[];

type NumericSetting = (typeof SERVE_NUMBERS)[number];

export const SERVE_DEFAULTS = {
  host: '127.0.0.1',
  ...(Object.fromEntries(SERVE_NUMBERS.map((n) => [n, OPTIONS[n].default])) as Record<
    NumericSetting,
    number
  >),
};

/** The numeric settings with their defaults filled in, each checked against its range. */
function settingsOf(options: ServiceOptions): Record<NumericSetting, number> {
  const settings = {} as Record<NumericSetting, number>;
  for (const key of SERVE_NUMBERS) {
    const value = options[key] ?? SERVE_DEFAULTS[key];
    checkOption(key, value);
    settings[key] = value;
  }
  return settings;
}

export interface ServiceOptions {
  /** The models, by the name a URL uses; the first is the default. */
  models: { name: string; model: string | KensaModel }[];
  host?: string;
  /** 0 picks a free port (see `port` on the started service). */
  port?: number;
  /** Required in `Authorization: Bearer …` on every route but /healthz and /readyz. */
  token?: string;
  threshold?: ThresholdChoice;
  maxBatch?: number;
  maxWaitMs?: number;
  queueLimit?: number;
  bodyLimitMb?: number;
  /**
   * Most request-body megabytes being received at once (all connections together): a request that would
   * go beyond is answered 503 with Retry-After before its body is read. Bodies without a Content-Length
   * count as the largest allowed body.
   */
  receivingMb?: number;
  pixelLimit?: number;
  timeoutMs?: number;
  /** Keep each NG image and its JSON here (written atomically). */
  saveNg?: string;
  /** Millimetres per original pixel (default: each model's, from train --mm-per-pixel). */
  mmPerPixel?: number;
  /** Regions whose longer side is below this many mm do not count towards NG (needs the pixel size). */
  minDefectMm?: number;
  /** How strongly the heat map covers the photograph in ?heatmap=1 and evidence (0 to 1, default 0.5). */
  overlayOpacity?: number;
  weights?: string;
  cacheDir?: string;
  onPlan?: (message: string) => void;
  /** Lines for the operator: listening, ready, evidence that could not be written. */
  onLog?: (message: string) => void;
}

/** What POST …/inspect answers. */
export interface InspectResponse {
  model: string;
  /** The multipart part's file name, when one was given (never used as a path). */
  file?: string;
  verdict: 'OK' | 'NG';
  score: number;
  normalized_score: number;
  threshold: { name: string; value: number };
  width: number;
  height: number;
  regions: DefectRegion[];
  timings_ms: { queue: number; inference: number; total: number };
  batch_size: number;
  /** The heat-map overlay (PNG, base64), with ?heatmap=1. */
  heatmap_png?: string;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether an IP address is a loopback address (127.0.0.0/8, ::1, or 127.x mapped into IPv6). */
function isLoopbackAddress(address: string): boolean {
  const v4 = address.replace(/^::ffff:/i, '');
  if (isIP(v4) === 4) return LOOPBACK.check(v4, 'ipv4');
  return isIP(address) === 6 && LOOPBACK.check(address, 'ipv6');
}

/**
 * Whether the service would be reachable from this machine only: the host is a loopback address, or a
 * name that resolves to loopback addresses alone. A name is resolved, never judged by its spelling
 * ('127.attacker.example' is whatever its DNS says); one that cannot be resolved does not count.
 */
export async function isLoopback(host: string): Promise<boolean> {
  if (isIP(host)) return isLoopbackAddress(host);
  try {
    const addresses = await lookup(host, { all: true });
    return addresses.length > 0 && addresses.every((a) => isLoopbackAddress(a.address));
  } catch {
    return false;
  }
}

/** An HTTP error with the status it is answered with. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

interface Served {
  name: string;
  model: KensaModel;
  inspector: Inspector;
  batcher: MicroBatcher;
  threshold: { name: string; value: number };
  /** The regions' sizes in mm and the size rule (pipeline/contracts/decisions.ts). */
  size: SizeRule;
  /** The recent OK images' scores against the calibration's (pipeline/drift.ts). */
  drift: DriftMonitor;
}

const bodyBytes = (settings: { bodyLimitMb: number }) => settings.bodyLimitMb * 1024 * 1024;

/** The limits of a multipart body, as multipart.limits below sets them, by the code of their refusal. */
const MULTIPART = { files: 1, fields: 8, parts: 10 };
const MULTIPART_LIMITS: Record<string, string> = {
  FST_FILES_LIMIT: `the multipart body has more than ${MULTIPART.files} file part: send one image per request`,
  FST_FIELDS_LIMIT: `the multipart body has more than ${MULTIPART.fields} fields besides the file`,
  FST_PARTS_LIMIT: `the multipart body has more than ${MULTIPART.parts} parts`,
};

function metrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'kensa_process_' });
  return {
    registry,
    requests: new Counter({
      name: 'kensa_requests_total',
      help: 'Inspection requests by model and outcome (ok, ng, client_error, overloaded, timeout, error)',
      labelNames: ['model', 'outcome'] as const,
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'kensa_request_duration_seconds',
      help: 'Inspection request latency, from the request to the answer',
      labelNames: ['model'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    queue: new Gauge({
      name: 'kensa_queue_depth',
      help: 'Images waiting for a batch',
      labelNames: ['model'] as const,
      registers: [registry],
    }),
    batches: new Histogram({
      name: 'kensa_batch_size',
      help: 'Images per backbone batch',
      labelNames: ['model'] as const,
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: 'kensa_in_flight_requests',
      help: 'Inspection requests being answered',
      registers: [registry],
    }),
    drift: new Gauge({
      name: 'kensa_drift_share_above',
      help: `Share of the last ${DRIFT_WINDOW} images judged OK that scored above the calibration's 90th percentile (about 0.1 when they look like the calibration images)`,
      labelNames: ['model'] as const,
      registers: [registry],
    }),
    drifting: new Gauge({
      name: 'kensa_drift',
      help: 'Whether the recent images judged OK no longer look like the calibration images (1: the zero-false-alarm promise may not hold; see the log)',
      labelNames: ['model'] as const,
      registers: [registry],
    }),
    evidenceErrors: new Counter({
      name: 'kensa_evidence_errors_total',
      help: 'NG images that could not be saved with --save-ng',
      registers: [registry],
    }),
  };
}

/** A uniform gray image at the model's input size: one pass of it warms the backbone and the method. */
async function warmUpImage(model: KensaModel): Promise<Buffer> {
  const method = getMethod(model.meta.method);
  const grid = method.inputGrid(model.state);
  const [h, w] = grid ? [grid[0] * method.stride, grid[1] * method.stride] : [256, 256];
  return sharp({ create: { width: w, height: h, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .png()
    .toBuffer();
}

const sameSecret = (a: string, b: string) =>
  timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());

/** The outcome label of an answered request. */
function outcomeOf(status: number, verdict?: 'OK' | 'NG'): string {
  if (status === 200 && verdict) return verdict.toLowerCase();
  if (status === 503) return 'overloaded';
  if (status === 504) return 'timeout';
  if (status >= 400 && status < 500) return 'client_error';
  return 'error';
}

export class InspectionService {
  private ready = false;
  private closing?: Promise<void>;
  /** Request-body bytes being received or held now (all connections). */
  private receiving = 0;

  private constructor(
    readonly app: FastifyInstance,
    private readonly served: Map<string, Served>,
    private readonly options: ServiceOptions,
    private readonly settings: Record<NumericSetting, number>,
    private readonly m: ReturnType<typeof metrics>,
  ) {}

  /** The address the service listens on. */
  get url(): string {
    const a = this.app.server.address();
    if (!a || typeof a === 'string') return String(a);
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  get port(): number {
    const a = this.app.server.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  /** Loads the models, listens, warms each backbone; /readyz answers 200 once all are warm. */
  static async start(options: ServiceOptions): Promise<InspectionService> {
    const host = options.host ?? SERVE_DEFAULTS.host;
    const settings = settingsOf(options);
    checkOptions(options, ['mmPerPixel', 'minDefectMm', 'overlayOpacity']);
    if (!options.models.length) throw new KensaError('E_ARGUMENT', 'give at least one model (--model FILE)');
    if (!options.token && !(await isLoopback(host)))
      throw new KensaError(
        'E_ARGUMENT',
        `binding to ${host} makes the service reachable from other machines: give a bearer token with --token-file FILE ` +
          '(a file holding one secret line), or bind to 127.0.0.1',
      );
    const names = new Set<string>();
    for (const { name } of options.models) {
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(name))
        throw new KensaError(
          'E_ARGUMENT',
          `model name '${name}' is not usable in a URL: use letters, digits, '.', '_' and '-' (at most 64), as in --model NAME=FILE`,
        );
      if (names.has(name))
        throw new KensaError(
          'E_ARGUMENT',
          `two models are named '${name}': name them with --model NAME=FILE`,
        );
      names.add(name);
    }
    if (options.saveNg) {
      await mkdir(options.saveNg, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
        throw new KensaError('E_IO', `cannot create the evidence folder (${error.code})`, {
          file: options.saveNg,
        });
      });
      await checkWritable(options.saveNg, 'folder');
    }
    const m = metrics();
    const served = new Map<string, Served>();
    try {
      for (const { name, model: source } of options.models) {
        // the threshold and the size rule checked before the model's backbone loads
        const { model, threshold, size } = await decisionsOf(source, options);
        const inspector = await Inspector.open(model, {
          weights: options.weights,
          cacheDir: options.cacheDir,
          batch: settings.maxBatch,
          onPlan: options.onPlan && ((line) => options.onPlan!(`${name}: ${line}`)),
        });
        const batcher = new MicroBatcher(inspector, {
          maxBatch: settings.maxBatch,
          maxWaitMs: settings.maxWaitMs,
          queueLimit: settings.queueLimit,
          pixelLimit: options.pixelLimit,
          onBatch: (size) => m.batches.observe({ model: name }, size),
          onQueue: (depth) => m.queue.set({ model: name }, depth),
        });
        const drift = new DriftMonitor(
          keptScores(model.calibrationScores, model.meta.calibration),
          DRIFT_WINDOW,
        );
        served.set(name, { name, model, inspector, batcher, threshold, size, drift });
      }
    } catch (error) {
      for (const s of served.values()) await s.inspector.dispose();
      throw error;
    }
    const app = InspectionService.app(settings);
    const service = new InspectionService(app, served, options, settings, m);
    service.routes();
    try {
      await app.listen({ host, port: settings.port });
    } catch (error) {
      await service.close();
      const code = (error as NodeJS.ErrnoException).code;
      throw new KensaError(
        'E_IO',
        code === 'EADDRINUSE'
          ? `port ${settings.port} on ${host} is in use: stop what uses it or pick another with --port`
          : `cannot listen on ${host}:${settings.port} (${code ?? (error as Error).message})`,
        { cause: error },
      );
    }
    options.onLog?.(`listening on ${service.url}`);
    for (const s of served.values()) {
      try {
        await s.batcher.submit(await warmUpImage(s.model), 'warm-up image', 600_000);
      } catch (error) {
        // a model that cannot give a verdict (its scores overflow) is not served at all
        if (error instanceof KensaError && error.code === 'E_RUNTIME') {
          await service.close();
          throw new KensaError('E_RUNTIME', `model '${s.name}' cannot be served: ${error.message}`);
        }
        options.onLog?.(`${s.name}: the warm-up image was not scored (${(error as Error).message})`);
      }
    }
    service.ready = true;
    options.onLog?.(`ready: ${[...served.keys()].join(', ')}`);
    return service;
  }

  private static app(settings: Record<NumericSetting, number>): FastifyInstance {
    // what Node's HTTP parser refuses before fastify sees a request (a slow body: 408; headers too large:
    // 431; a malformed request: 400) is answered in the service's one error shape too
    const clientErrorHandler = (error: Error & { code?: string }, socket: Socket) => {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const [status, message] =
        error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, `the request did not arrive within the time limit (${settings.timeoutMs} ms; --timeout-ms)`]
          : error.code === 'HPE_HEADER_OVERFLOW'
            ? [431, 'the request headers are larger than the service accepts']
            : [400, `the request is not valid HTTP (${error.code ?? error.message})`];
      const body = JSON.stringify({ error: { status, message } });
      if (socket.writable)
        socket.write(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      socket.destroy(error);
    };
    const { timeoutMs } = settings;
    // Node's own timeouts end connections that send too slowly (slow-loris): the headers and the whole
    // request must arrive within the request time limit, checked every second
    const serverFactory = (handler: (req: IncomingMessage, res: ServerResponse) => void) =>
      createServer(
        {
          requestTimeout: timeoutMs,
          headersTimeout: Math.min(timeoutMs, 10_000),
          connectionsCheckingInterval: 1000,
          keepAliveTimeout: 5000,
        },
        handler,
      );
    const app = Fastify({
      serverFactory,
      bodyLimit: bodyBytes(settings),
      requestTimeout: timeoutMs,
      // while closing, the onRequest hook answers 503 in the service's error shape
      return503OnClosing: false,
      forceCloseConnections: 'idle',
      logger: false,
      clientErrorHandler,
      frameworkErrors: (error, _req, reply) => {
        const body = { error: { status: 400, message: `the request's URL is not valid (${error.message})` } };
        void (reply as FastifyReply).code(400).send(body);
      },
    });
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    return app;
  }

  private routes(): void {
    const { app, m } = this;
    void app.register(multipart, {
      limits: { fileSize: bodyBytes(this.settings), ...MULTIPART },
    });
    const token = this.options.token;
    app.addHook('onRequest', async (req, reply) => {
      if (this.closing) {
        reply.header('Connection', 'close').header('Retry-After', '5');
        return reply.code(503).send({ error: { status: 503, message: new ClosingError().message } });
      }
      if (!token || req.url === '/healthz' || req.url === '/readyz') return;
      // the scheme's name is case-insensitive (RFC 7235): Bearer, bearer, BEARER
      const given = /^bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
      if (!given || !sameSecret(given, token)) {
        reply.header('WWW-Authenticate', 'Bearer');
        return reply.code(401).send({ error: { status: 401, message: 'a bearer token is required' } });
      }
    });
    // the bytes being received, all connections together, stay within --max-receiving-mb: a body that
    // would go beyond is refused before it is read (each connection could otherwise buffer a whole body)
    const receivingLimit = this.settings.receivingMb * 1024 * 1024;
    app.addHook('onRequest', async (req, reply) => {
      if (req.method !== 'POST' && req.method !== 'PUT') return;
      const length = Number(req.headers['content-length']);
      const bytes = Math.min(
        bodyBytes(this.settings),
        Number.isFinite(length) && length >= 0 ? length : bodyBytes(this.settings),
      );
      if (this.receiving + bytes > receivingLimit) {
        reply.header('Retry-After', '1').header('Connection', 'close');
        return reply.code(503).send({
          error: {
            status: 503,
            message: `the service is receiving ${(this.receiving / 2 ** 20).toFixed(0)} MB of images already (at most ${this.settings.receivingMb} MB at once; --max-receiving-mb); retry shortly`,
          },
        });
      }
      this.receiving += bytes;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this.receiving -= bytes;
      };
      // the body is held until the answer is sent or the connection goes
      reply.raw.once('close', release);
      req.raw.once('close', () => {
        if (reply.raw.writableEnded || reply.raw.destroyed) release();
      });
    });
    app.addHook('onResponse', async (req, reply) => {
      const model = (req as FastifyRequest & { kensaModel?: string }).kensaModel;
      if (!model) return;
      const verdict = (req as FastifyRequest & { kensaVerdict?: 'OK' | 'NG' }).kensaVerdict;
      m.requests.inc({ model, outcome: outcomeOf(reply.statusCode, verdict) });
      m.latency.observe({ model }, reply.elapsedTime / 1000);
    });
    app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, req, reply) => {
      // fastify's and the multipart plugin's own refusals (body too large, malformed multipart, ...)
      let status =
        error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
      if (status === 500 && /multipart|boundary|form/i.test(`${error.code ?? ''} ${error.message}`))
        status = 400;
      const message =
        MULTIPART_LIMITS[error.code ?? ''] ??
        (status === 413
          ? `the body is larger than the limit (${this.settings.bodyLimitMb} MB; --max-body-mb)`
          : status === 500
            ? 'internal error'
            : error.message);
      if (status === 500) this.options.onLog?.(`internal error on ${req.method} ${req.url}: ${error.stack}`);
      void reply.code(status).send({ error: { status, message } });
    });
    app.setNotFoundHandler((req, reply) => {
      void reply.code(404).send({
        error: {
          status: 404,
          message: `no route ${req.method} ${req.url.split('?')[0]}: POST /v1/inspect or /v1/models/NAME/inspect`,
        },
      });
    });
    app.get('/healthz', async () => ({ status: 'ok' }));
    app.get('/readyz', async (_req, reply) => {
      if (!this.ready || this.closing) return reply.code(503).send({ status: 'starting' });
      return { status: 'ready', models: [...this.served.keys()] };
    });
    app.get('/metrics', async (_req, reply) => {
      reply.type(m.registry.contentType);
      return m.registry.metrics();
    });
    app.get('/v1/models', async () => ({
      default: this.served.keys().next().value,
      models: [...this.served.values()].map((s) => ({
        name: s.name,
        method: s.model.meta.method,
        backbone: s.model.meta.backbone.name,
        preprocess: s.model.meta.preprocess,
        threshold: s.threshold,
        thresholds: s.model.meta.thresholds,
      })),
    }));
    const inspect = (name: () => string) => async (req: FastifyRequest, reply: FastifyReply) => {
      const served = this.served.get(name());
      if (!served)
        return reply.code(404).send({
          error: { status: 404, message: `no model named '${name()}'; GET /v1/models lists them` },
        });
      (req as FastifyRequest & { kensaModel?: string }).kensaModel = served.name;
      m.inFlight.inc();
      try {
        const body = await this.inspect(served, req, reply);
        (req as FastifyRequest & { kensaVerdict?: string }).kensaVerdict = body.verdict;
        return body;
      } catch (error) {
        const e =
          error instanceof HttpError
            ? error
            : error instanceof QueueFullError
              ? new HttpError(503, error.message, { 'Retry-After': '1' })
              : error instanceof DeadlineError
                ? new HttpError(504, error.message)
                : error instanceof ClientGoneError
                  ? new HttpError(499, error.message)
                  : error instanceof ClosingError
                    ? new HttpError(503, error.message, { 'Retry-After': '5' })
                    : error instanceof KensaError && error.code === 'E_RUNTIME'
                      ? new HttpError(500, error.message)
                      : null;
        if (!e) throw error;
        return reply
          .code(e.status)
          .headers(e.headers)
          .send({ error: { status: e.status, message: e.message } });
      } finally {
        m.inFlight.dec();
      }
    };
    app.post(
      '/v1/inspect',
      inspect(() => this.served.keys().next().value!),
    );
    app.post('/v1/models/:name/inspect', async (req, reply) =>
      inspect(() => (req.params as { name: string }).name)(req, reply),
    );
  }

  /** The image of a request: the body's bytes, or the one file part of a multipart body. */
  private async imageOf(req: FastifyRequest): Promise<{ bytes: Buffer; file?: string }> {
    if (req.isMultipart()) {
      // every part is read, so that a body past a limit (a second file, too many fields) is refused
      let found: { bytes: Buffer; file?: string } | undefined;
      for await (const part of req.parts()) {
        if (part.type !== 'file') continue;
        // the name is kept for the answer only; it is never used as a path
        found = { bytes: await part.toBuffer(), file: part.filename?.split(/[\\/]/).pop() || undefined };
      }
      if (!found)
        throw new HttpError(400, 'the multipart body has no file part: send the image as a file field');
      return found;
    }
    const body = req.body;
    if (!Buffer.isBuffer(body) || !body.length)
      throw new HttpError(
        400,
        'the body is empty: send the image file as the body (or as a multipart file part)',
      );
    return { bytes: body };
  }

  private async inspect(served: Served, req: FastifyRequest, reply: FastifyReply): Promise<InspectResponse> {
    const start = performance.now();
    const { timeoutMs } = this.settings;
    const { bytes, file } = await this.imageOf(req);
    if (!bytes.length) throw new HttpError(400, 'the image file is empty');
    const label = file ?? 'request body';
    const pixelLimit = this.options.pixelLimit ?? DEFAULT_PIXEL_LIMIT;
    try {
      await probeImageBytes(bytes, label, { pixelLimit });
    } catch (error) {
      const message = (error as Error).message;
      if (!/pixel limit/i.test(message)) throw new HttpError(415, message);
      const bytes = /decoding it takes [^)]*\)/.exec(message)?.[0];
      throw new HttpError(
        413,
        `${label}: the image is larger than the service takes (${bytes ?? `more than ${pixelLimit} pixels`}; --pixel-limit)`,
      );
    }
    const remaining = Math.max(1, timeoutMs - (performance.now() - start));
    // a client that goes away while its image waits takes the image out of the queue
    const gone = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) gone.abort();
    };
    reply.raw.once('close', onClose);
    let r;
    try {
      r = await served.batcher.submit(bytes, label, remaining, gone.signal);
    } catch (error) {
      if (error instanceof KensaError && (error.code === 'E_FORMAT' || error.code === 'E_ARGUMENT'))
        throw new HttpError(422, error.message);
      throw error;
    }
    const v = decide(r.scored, served.threshold.value, served.size);
    if (v.verdict === 'OK') this.watchDrift(served, r.scored.score);
    const answer: InspectResponse = {
      model: served.name,
      ...(file ? { file } : {}),
      verdict: v.verdict,
      score: r.scored.score,
      normalized_score: v.normalized_score,
      threshold: served.threshold,
      width: r.scored.image.width,
      height: r.scored.image.height,
      regions: v.regions,
      timings_ms: { queue: r.queueMs, inference: r.batchMs, total: 0 },
      batch_size: r.batchSize,
    };
    const query = req.query as Record<string, string | undefined>;
    const heatmap = query.heatmap === '1' || query.heatmap === 'true';
    if (heatmap || (this.options.saveNg && v.verdict === 'NG')) {
      const png = await overlayOf(r.scored, v, served.model, this.options.overlayOpacity);
      if (heatmap) answer.heatmap_png = Buffer.from(png).toString('base64');
    }
    answer.timings_ms.total = performance.now() - start;
    if (this.options.saveNg && v.verdict === 'NG') await this.saveEvidence(bytes, answer);
    return answer;
  }

  /** Adds an OK image's score to its model's drift monitor: a metric, and a log line when drift starts. */
  private watchDrift(served: Served, score: number): void {
    const started = served.drift.add(score);
    const status = served.drift.status();
    this.m.drift.set({ model: served.name }, status.count ? status.above / status.count : 0);
    this.m.drifting.set({ model: served.name }, status.drifting ? 1 : 0);
    if (started)
      this.options.onLog?.(`warning: ${served.name}: ${driftMessage(started, 'images judged OK recently')}`);
  }

  /** Keeps an NG image and its answer: `<time>-<sha256 prefix>.<format>` and `.json`, written atomically. */
  private async saveEvidence(bytes: Buffer, answer: InspectResponse): Promise<void> {
    const dir = this.options.saveNg!;
    const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 12);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    try {
      const format = isBmp(bytes)
        ? 'bmp'
        : ((
            await sharp(bytes)
              .metadata()
              .catch(() => undefined)
          )?.format ?? 'img');
      const base = join(dir, `${stamp}-${answer.model}-${hash}`);
      const { heatmap_png: _h, ...json } = answer;
      await writeFileAtomic(`${base}.${format}`, bytes);
      await writeFileAtomic(`${base}.json`, JSON.stringify(json, null, 2) + '\n');
    } catch (error) {
      this.m.evidenceErrors.inc();
      this.options.onLog?.(`warning: an NG image could not be saved in ${dir}: ${(error as Error).message}`);
    }
  }

  /** Stops accepting, answers what is in flight and queued, then frees the models. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.app.close();
      for (const s of this.served.values()) {
        await s.batcher.close();
        await s.inspector.dispose();
      }
    })();
    return this.closing;
  }
}
