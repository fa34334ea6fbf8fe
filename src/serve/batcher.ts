/**
 * Micro-batching for the service: requests that arrive close together share backbone batches. A job waits
 * until `maxBatch` images are queued or the oldest has waited `maxWaitMs`, then up to `maxBatch` images go
 * through the Inspector together (decoding ahead, backbone, method, map step — the path kensa predict
 * takes). One batch runs at a time; the queue is bounded, and a job whose deadline passes while it waits is
 * taken out of the queue instead of being scored for nobody.
 */
import type { ImageItem } from '../data/dataset.js';
import type { Inspector, ScoredImage } from '../pipeline/engine/inspector.js';
import { KensaError } from '../util/errors.js';

export interface BatcherOptions {
  /** Most images per batch. */
  maxBatch: number;
  /** Longest a queued image waits for others before its batch starts (ms). */
  maxWaitMs: number;
  /** Most images waiting (not yet in a batch); more are refused with QueueFullError. */
  queueLimit: number;
  pixelLimit?: number;
  /** Told each batch's size as it starts, and the queue depth whenever it changes. */
  onBatch?: (size: number) => void;
  onQueue?: (depth: number) => void;
}

/** The queue is full: the caller should come back later (HTTP 503 with Retry-After). */
export class QueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`the queue is full (${limit} images waiting); retry shortly`);
  }
}

/** The service is closing and takes no new image (HTTP 503). */
export class ClosingError extends Error {
  constructor() {
    super('the service is shutting down; send the image to another instance or retry when it is back');
  }
}

/** The deadline passed before the image was scored (HTTP 504). */
export class DeadlineError extends Error {
  constructor(ms: number) {
    super(`no result within the request time limit (${Math.round(ms)} ms); the service is busy, retry later`);
  }
}

/** The client left while its image was queued (answered 499, which nobody receives). */
export class ClientGoneError extends Error {
  constructor() {
    super('the client closed the connection');
  }
}

export interface BatchResult {
  scored: ScoredImage;
  /** Milliseconds waiting in the queue, and in the batch (decode to map). */
  queueMs: number;
  batchMs: number;
  /** Images in the batch this one was scored in. */
  batchSize: number;
}

interface Job {
  item: ImageItem;
  enqueued: number;
  resolve: (r: BatchResult) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
  started?: number;
}

export class MicroBatcher {
  private readonly queue: Job[] = [];
  private running = false;
  private waitTimer?: NodeJS.Timeout;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private settleIdle?: () => void;

  constructor(
    private readonly inspector: Inspector,
    private readonly options: BatcherOptions,
  ) {}

  get depth(): number {
    return this.queue.length;
  }

  /**
   * Scores one image (its bytes; `name` only names it in messages); rejects after `deadlineMs`, or when
   * `signal` aborts (the client has gone) while the image is still queued: nobody waits for its answer.
   */
  submit(bytes: Buffer, name: string, deadlineMs: number, signal?: AbortSignal): Promise<BatchResult> {
    if (this.closed) return Promise.reject(new ClosingError());
    if (this.queue.length >= this.options.queueLimit)
      return Promise.reject(new QueueFullError(this.options.queueLimit));
    return new Promise<BatchResult>((resolve, reject) => {
      const job: Job = { item: { path: name, bytes }, enqueued: performance.now(), resolve, reject };
      const dequeue = () => {
        const at = this.queue.indexOf(job);
        if (at >= 0) {
          this.queue.splice(at, 1);
          this.options.onQueue?.(this.queue.length);
        }
      };
      job.timer = setTimeout(() => {
        dequeue();
        reject(new DeadlineError(deadlineMs));
      }, deadlineMs);
      signal?.addEventListener(
        'abort',
        () => {
          if (job.started !== undefined) return;
          dequeue();
          clearTimeout(job.timer);
          reject(new ClientGoneError());
        },
        { once: true },
      );
      this.queue.push(job);
      this.options.onQueue?.(this.queue.length);
      this.schedule();
    });
  }

  /** Refuses new images and waits for those queued and running to finish. */
  async close(): Promise<void> {
    this.closed = true;
    this.schedule();
    while (this.running || this.queue.length) await this.idle;
  }

  private schedule(): void {
    if (this.running || !this.queue.length) return;
    const full = this.queue.length >= this.options.maxBatch;
    const waited = performance.now() - this.queue[0].enqueued;
    if (full || this.closed || waited >= this.options.maxWaitMs) {
      clearTimeout(this.waitTimer);
      this.waitTimer = undefined;
      void this.runBatch();
    } else if (!this.waitTimer) {
      this.waitTimer = setTimeout(
        () => {
          this.waitTimer = undefined;
          this.schedule();
        },
        Math.max(0, this.options.maxWaitMs - waited),
      );
    }
  }

  private async runBatch(): Promise<void> {
    this.running = true;
    this.idle = new Promise((r) => (this.settleIdle = r));
    const jobs = this.queue.splice(0, this.options.maxBatch);
    this.options.onQueue?.(this.queue.length);
    this.options.onBatch?.(jobs.length);
    const start = performance.now();
    for (const job of jobs) job.started = start;
    const pending = new Set(jobs);
    const finish = (job: Job, outcome: BatchResult | Error) => {
      pending.delete(job);
      clearTimeout(job.timer);
      if (outcome instanceof Error) job.reject(outcome);
      else job.resolve(outcome);
    };
    try {
      for await (const scored of this.inspector.score(
        jobs.map((j) => j.item),
        {
          batch: this.options.maxBatch,
          pixelLimit: this.options.pixelLimit,
          onError: (item, error) => {
            const job = jobs.find((j) => j.item === item);
            if (job) finish(job, error);
          },
        },
      )) {
        const job = jobs[scored.index];
        // the map and the decoded pixels are all the caller needs; the bytes stay with the request
        finish(job, {
          scored,
          queueMs: start - job.enqueued,
          batchMs: performance.now() - start,
          batchSize: jobs.length,
        });
      }
    } catch (error) {
      for (const job of pending) finish(job, error as Error);
    } finally {
      for (const job of pending)
        finish(job, new KensaError('E_RUNTIME', 'the image was not scored (internal error)'));
      this.running = false;
      this.settleIdle?.();
      this.schedule();
    }
  }
}
