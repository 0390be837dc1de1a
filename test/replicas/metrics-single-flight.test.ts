/**
 * Concurrent scrapes of GET /metrics with WORKERS > 1 share one collection: a worker asks the
 * primary once while its answer is awaited, and the primary asks each worker once while it
 * collects. Issue (attack review of 2026-12-06): 300 concurrent scrapes — /metrics needs no token —
 * had the primary collect and aggregate 300 times over, and the admin routes' rate-limit requests
 * to it timed out (503 CLUSTER_PRIMARY_TIMEOUT). Ordered by messages, never by timing.
 */
import type { Worker } from 'node:cluster';
import { afterEach, describe, expect, it } from 'vitest';
import { PrimaryChannel } from '../../src/cli/cluster-messages.js';
import { ClusterMetricsPrimary, clusterScrape } from '../../src/cli/cluster-metrics.js';

const listeners: NodeJS.MessageListener[] = [];
afterEach(() => {
  for (const l of listeners.splice(0)) process.off('message', l);
});

/** A worker's channel whose requests are recorded in `sent` instead of reaching a primary. */
function recordedChannel(): { channel: PrimaryChannel; sent: { type: string; id: number }[] } {
  const before = new Set(process.listeners('message'));
  const channel = new PrimaryChannel();
  for (const l of process.listeners('message')) if (!before.has(l)) listeners.push(l);
  const sent: { type: string; id: number }[] = [];
  channel.send = (message) => {
    sent.push(message as { type: string; id: number });
  };
  return { channel, sent };
}

/** A connected worker as the primary sees it; `sent` gets the messages sent to it. */
function fakeWorker(id: number): { worker: Worker; sent: { type: string; id: number }[] } {
  const sent: { type: string; id: number }[] = [];
  const worker = {
    id,
    process: { pid: 1000 + id },
    isConnected: () => true,
    send: (message: { type: string; id: number }, _socket: unknown, done: (e: null) => void) => {
      sent.push(message);
      done(null);
    },
  } as unknown as Worker;
  return { worker, sent };
}

describe('concurrent /metrics scrapes with WORKERS > 1', () => {
  it('a worker sends the primary one request for the scrapes that wait for its answer', async () => {
    const { channel, sent } = recordedChannel();
    const scrape = clusterScrape(channel);
    const waiting = [scrape(), scrape(), scrape()];
    expect(sent).toEqual([{ type: 'normserve:scrape', id: 0 }]);
    process.emit('message', { type: 'normserve:scraped', id: 0, text: 'the text' }, undefined);
    expect(await Promise.all(waiting)).toEqual(['the text', 'the text', 'the text']);
    // Answered: the next scrape asks again.
    const next = scrape();
    expect(sent).toEqual([
      { type: 'normserve:scrape', id: 0 },
      { type: 'normserve:scrape', id: 1 },
    ]);
    process.emit('message', { type: 'normserve:scraped', id: 1, text: 'newer' }, undefined);
    expect(await next).toBe('newer');
  });

  it('the primary asks each worker once for the scrapes made while it collects', async () => {
    const primary = new ClusterMetricsPrimary();
    const workers = [fakeWorker(1), fakeWorker(2)];
    for (const w of workers) primary.add(w.worker);
    const scrapes = Array.from({ length: 5 }, () => primary.scrape());
    for (const w of workers)
      expect(w.sent).toEqual([{ type: 'normserve:collect', id: expect.any(Number) }]);
    const counter = (value: number) => ({
      name: 'normserve_test_total',
      help: 'a test counter',
      type: 'counter' as const,
      aggregator: 'sum' as const,
      values: [{ value, labels: {} }],
    });
    for (const [i, w] of workers.entries())
      primary.collected(w.worker, {
        type: 'normserve:collected',
        id: w.sent[0]!.id,
        seq: 1,
        service: [counter(i + 1)],
        process: [],
      });
    const texts = await Promise.all(scrapes);
    expect(new Set(texts).size).toBe(1);
    expect(texts[0]).toMatch(/^normserve_test_total 3$/m);
    expect(texts[0]).toMatch(/^normserve_cluster_workers_stale 0$/m);
    // Collected: the next scrape asks the workers again.
    const next = primary.scrape();
    for (const w of workers) expect(w.sent).toHaveLength(2);
    for (const [i, w] of workers.entries())
      primary.collected(w.worker, {
        type: 'normserve:collected',
        id: w.sent[1]!.id,
        seq: 2,
        service: [counter(10 * (i + 1))],
        process: [],
      });
    expect(await next).toMatch(/^normserve_test_total 30$/m);
  });
});
