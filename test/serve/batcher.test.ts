/**
 * The service's micro-batcher with a stand-in scorer that takes 50 ms a batch and records what it scored:
 * images that arrive together share a batch (up to the most), a lone image waits at most the wait time,
 * a full queue refuses at once, an image whose deadline passes or whose client leaves while it is queued
 * is taken out and never scored, and close() answers everything queued before it returns.
 */
import { describe, expect, it } from 'vitest';
import type { ImageItem } from '../../src/data/dataset.js';
import type { Inspector, ScoredImage } from '../../src/pipeline/engine/inspector.js';
import { DeadlineError, MicroBatcher, QueueFullError } from '../../src/serve/batcher.js';

function standIn() {
  const batches: string[][] = [];
  const inspector = {
    async *score(items: readonly ImageItem[]): AsyncGenerator<ScoredImage> {
      batches.push(items.map((i) => i.path));
      await new Promise((r) => setTimeout(r, 50));
      for (let index = 0; index < items.length; index++)
        yield { item: items[index], index, score: index } as unknown as ScoredImage;
    },
  } as unknown as Inspector;
  return { inspector, batches };
}

const image = Buffer.from('x');

describe('MicroBatcher', () => {
  it('scores images that arrive together in one batch, up to the most; a lone one after the wait', async () => {
    const { inspector, batches } = standIn();
    const b = new MicroBatcher(inspector, { maxBatch: 4, maxWaitMs: 20, queueLimit: 100 });
    const results = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((n) => b.submit(image, n, 5000)));
    expect(batches).toEqual([
      ['a', 'b', 'c', 'd'],
      ['e', 'f'],
    ]);
    expect(results.map((r) => r.batchSize)).toEqual([4, 4, 4, 4, 2, 2]);
    const t0 = performance.now();
    const lone = await b.submit(image, 'g', 5000);
    expect(lone.batchSize).toBe(1);
    expect(lone.queueMs).toBeGreaterThanOrEqual(15);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('refuses when the queue is full; a deadline or a departed client takes an image out unscored', async () => {
    const { inspector, batches } = standIn();
    const b = new MicroBatcher(inspector, { maxBatch: 1, maxWaitMs: 0, queueLimit: 2 });
    const running = b.submit(image, 'running', 5000);
    await new Promise((r) => setTimeout(r, 5));
    const late = b.submit(image, 'late', 20);
    const gone = new AbortController();
    const left = b.submit(image, 'left', 5000, gone.signal);
    await expect(b.submit(image, 'third', 5000)).rejects.toBeInstanceOf(QueueFullError);
    gone.abort();
    await expect(left).rejects.toThrow('the client closed the connection');
    await expect(late).rejects.toBeInstanceOf(DeadlineError);
    await running;
    expect(b.depth).toBe(0);
    await new Promise((r) => setTimeout(r, 80));
    expect(batches).toEqual([['running']]);
  });

  it('close() answers what is queued and refuses new images', async () => {
    const { inspector } = standIn();
    const b = new MicroBatcher(inspector, { maxBatch: 2, maxWaitMs: 1000, queueLimit: 10 });
    const queued = ['a', 'b', 'c'].map((n) => b.submit(image, n, 5000));
    await b.close();
    expect((await Promise.all(queued)).length).toBe(3);
    await expect(b.submit(image, 'd', 5000)).rejects.toThrow('the service is shutting down');
  });
});
