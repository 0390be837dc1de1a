/**
 * A WORKERS=2 server (real processes) is one server to its clients.
 *
 * GET /metrics: every scrape, whichever worker takes it,
 * reports the whole server — the sum over both workers — and every normserve_ series parses with a
 * Prometheus text-format parser; process metrics stay per worker; when a worker is SIGKILLed and
 * replaced, the totals do not go backwards (its counts live on in the primary's retired bucket).
 *
 * The admin rate limit is the server's: ADMIN_RATE_LIMIT_PER_MINUTE admin requests per client
 * address and minute in total, whichever workers take them, and failed authentications apart.
 *
 * Accounting of the scrapes themselves: a request is counted when its response has been sent
 * (Fastify's onResponse), so scrape k (k = 0, 1, …) sees the k scrapes before it and not itself.
 */
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN } from '../helpers/app.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows } from '../helpers/digits.js';
import {
  freshRequest,
  killServers,
  type LogLine,
  listeningPort,
  type Server,
  servingEnv,
  startServer,
} from '../helpers/server-process.js';
import { makeTempDir } from '../helpers/temp-files.js';

const PREDICTIONS = 1_000;
const SCRAPES = 10;
const CONCURRENCY = 8;
const PREDICT_ROUTE = '/v1/models/{name}:predict';
const rows = digitsTestRows().x;

const temps: string[] = [];
afterEach(killServers);
afterAll(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

interface Scrape {
  text: string;
  families: Map<string, PrometheusFamily>;
  /** Sum of normserve_http_requests_total over label sets matching `where`. */
  requests(where?: (labels: Record<string, string>) => boolean): number;
  /** The value of an unlabelled (or exactly labelled) sample, from the text. */
  sample(name: string, labels?: string): number | undefined;
}

async function scrape(port: number): Promise<Scrape> {
  const res = await freshRequest(port, 'GET', '/metrics');
  expect(res.status, res.body).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = res.body;
  // The parser throws on any line that is not valid exposition format.
  const families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
  return {
    text,
    families,
    requests(where = () => true) {
      const family = families.get('normserve_http_requests_total');
      expect(family?.type).toBe('COUNTER');
      return family!.metrics
        .filter((m) => where(m.labels ?? {}))
        .reduce((sum, m) => sum + Number(m.value), 0);
    },
    sample(name, labels = '') {
      const escaped = `${name}${labels}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const match = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text);
      return match ? Number(match[1]) : undefined;
    },
  };
}

/** Every normserve_ family: a known type, numeric values, sane names and labels. */
function expectWellFormed(s: Scrape): void {
  const names = [...s.families.keys()];
  expect(
    names.every((n) => n.startsWith('normserve_')),
    names.join(' '),
  ).toBe(true);
  expect(names.length).toBeGreaterThan(20);
  for (const family of s.families.values()) {
    expect(family.name).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/);
    expect(['COUNTER', 'GAUGE', 'HISTOGRAM'], family.name).toContain(family.type);
    expect(family.help.length, `${family.name} has help`).toBeGreaterThan(0);
    for (const m of family.metrics) {
      for (const v of [m.value, m.count, m.sum, ...Object.values(m.buckets ?? {})]) {
        if (v !== undefined) expect(Number.isNaN(Number(v)), `${family.name} ${v}`).toBe(false);
      }
      for (const label of Object.keys(m.labels ?? {}))
        expect(label).toMatch(/^[a-zA-Z_][a-zA-Z0-9_]*$/);
    }
  }
  // The parser groups histogram buckets by `le` only; the _count lines are checked as text.
  expect(s.text).toMatch(/^normserve_http_request_duration_seconds_bucket\{.*le="\+Inf"/m);
}

const LISTENING_LINE = (l: LogLine) => /^Server listening at /.test(l.msg ?? '');
const isRequestLine = (route: string) => (l: LogLine) => l.msg === 'request' && l.route === route;

/** How many request lines of `route` each pid logged. */
function perPid(server: Server, route: string): Map<number, number> {
  const counts = new Map<number, number>();
  for (const l of server.logs.filter(isRequestLine(route)))
    counts.set(l.pid as number, (counts.get(l.pid as number) ?? 0) + 1);
  return counts;
}

async function predictions(port: number, count: number): Promise<void> {
  let next = 0;
  const client = async () => {
    while (next < count) {
      const i = next++;
      const body = JSON.stringify({ instances: [rows[i % rows.length]] });
      const res = await freshRequest(port, 'POST', '/v1/models/digits:predict', { body });
      expect(res.status, res.body).toBe(200);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, client));
}

/**
 * Until both workers have answered a request: a worker builds the OpenAPI document once it is
 * ready (a few hundred milliseconds of its event loop), and the cluster's round robin hands new
 * connections only to a worker free to take them, so a burst right after the start may all reach
 * the other one. A request each has answered comes after that build.
 */
async function bothWorkersAnswer(server: Server, port: number): Promise<void> {
  const route = '/v1/models/{name}';
  await waitUntil(async () => {
    const res = await freshRequest(port, 'GET', '/v1/models/digits');
    expect(res.status, res.body).toBe(200);
    return perPid(server, route).size === 2 ? true : undefined;
  }, 'a request answered by each worker');
}

async function waitUntil<T>(
  check: () => Promise<T | undefined> | T | undefined,
  what: string,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('GET /metrics of a WORKERS=2 server', () => {
  it('reports the sum over both workers in every scrape, per-worker process metrics, and keeps a killed worker’s counts', async () => {
    const repository = makeTempDir('cluster-metrics');
    temps.push(repository);
    copyBundledModel('digits', repository);
    const server = startServer(servingEnv(repository, '2'));
    const port = await listeningPort(server, 2);

    await predictions(port, PREDICTIONS);
    // Both workers served predictions (fresh connections, each accepted by a free worker).
    const served = await waitUntil(() => {
      const counts = perPid(server, PREDICT_ROUTE);
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      return total === PREDICTIONS ? counts : undefined;
    }, `${PREDICTIONS} request log lines`);
    expect(served.size, JSON.stringify([...served])).toBe(2);
    for (const n of served.values()) expect(n).toBeLessThan(PREDICTIONS);

    const scrapes: Scrape[] = [];
    for (let k = 0; k < SCRAPES; k++) {
      const s = await scrape(port);
      expectWellFormed(s);
      // Neither worker's own count: the sum of both (each served fewer than 1,000).
      expect(
        s.requests((l) => l.route === PREDICT_ROUTE),
        `scrape ${k}`,
      ).toBe(PREDICTIONS);
      expect(
        s.requests((l) => l.route === '/metrics'),
        `scrape ${k}`,
      ).toBe(k);
      expect(s.requests(), `scrape ${k}: total`).toBe(PREDICTIONS + k);
      expect(
        s.sample(
          'normserve_http_request_duration_seconds_count',
          `{method="POST",route="${PREDICT_ROUTE}",status="200"}`,
        ),
      ).toBe(PREDICTIONS);
      expect(s.sample('normserve_batch_size_count', '{model="digits"}')).toBe(PREDICTIONS);
      // A gauge is not summed: both workers serve version 1.
      expect(s.sample('normserve_model_active_version', '{model="digits"}')).toBe(1);
      expect(s.sample('normserve_cluster_workers')).toBe(2);
      scrapes.push(s);
    }
    // The scrapes' own log lines (written after their responses) name the workers that answered.
    await waitUntil(
      () => (server.logs.filter(isRequestLine('/metrics')).length === SCRAPES ? true : undefined),
      `${SCRAPES} /metrics log lines`,
    );

    // Process metrics: one series per process, labelled by worker (and the primary's own).
    const workerInfo = scrapes.at(-1)!.families.get('normserve_cluster_worker_info')!;
    const workers = workerInfo.metrics.map((m) => m.labels!);
    expect(workers.map((w) => Number(w.pid)).sort()).toEqual([...served.keys()].sort());
    const memory = scrapes.at(-1)!.families.get('normserve_process_resident_memory_bytes')!;
    expect(memory.metrics.map((m) => m.labels?.worker).sort()).toEqual(
      [...workers.map((w) => w.worker), 'primary'].sort(),
    );

    // SIGKILL one worker: the primary replaces it, and its counts stay in the totals.
    const victim = workers[0]!;
    const before = scrapes.at(-1)!.requests();
    process.kill(Number(victim.pid), 'SIGKILL');
    await server.waitForLog((l) => l.msg === 'worker died; starting a new one', 'worker died');
    await listeningPort(server, 3);
    // Scrapes until the replacement has reported (its first answer may come after a scrape).
    const after = await waitUntil(async () => {
      const s = await scrape(port);
      const info = s.families.get('normserve_cluster_worker_info')?.metrics ?? [];
      const processes = s.families.get('normserve_process_resident_memory_bytes')?.metrics ?? [];
      return info.length === 2 &&
        info.every((m) => m.labels?.worker !== victim.worker) &&
        processes.length === 3
        ? s
        : undefined;
    }, 'the replacement worker in the metrics');
    expectWellFormed(after);
    expect(after.requests((l) => l.route === PREDICT_ROUTE)).toBe(PREDICTIONS);
    expect(after.requests()).toBeGreaterThanOrEqual(before);
    expect(after.sample('normserve_cluster_worker_exits_total')).toBe(1);
    const memoryAfter = after.families.get('normserve_process_resident_memory_bytes')!;
    expect(memoryAfter.metrics.map((m) => m.labels?.worker)).not.toContain(victim.worker);
    expect(memoryAfter.metrics).toHaveLength(3);
  }, 180_000);

  it("a worker that replaces a dead one counts the server's start models for readiness, not a directory added since", async () => {
    // review59: the replacement counted a bad copy added after the start, and /readyz answered
    // 200 or 503 by which worker accepted the probe.
    const repository = makeTempDir('cluster-readiness');
    temps.push(repository);
    copyBundledModel('digits', repository);
    const server = startServer(servingEnv(repository, '2', { MODEL_POLL_INTERVAL_MS: '200' }));
    const port = await listeningPort(server, 2);
    // A copy whose config.json still names "digits": it never loads.
    cpSync(join(repository, 'digits'), join(repository, 'digitsnew'), { recursive: true });
    await waitUntil(
      () =>
        server.logs.filter((l) => l.msg === 'version failed to load').length >= 2
          ? true
          : undefined,
      'both workers scanning the bad copy',
    );
    expect((await freshRequest(port, 'GET', '/readyz')).status).toBe(200);

    const pids = [...new Set(server.logs.filter((l) => LISTENING_LINE(l)).map((l) => l.pid))];
    process.kill(Number(pids[0]), 'SIGKILL');
    await server.waitForLog((l) => l.msg === 'worker died; starting a new one', 'worker died');
    await listeningPort(server, 3);
    const replacement = server.logs.filter((l) => LISTENING_LINE(l)).at(-1)!.pid as number;
    // Fresh connections until the replacement has answered a few (the kernel picks the worker).
    const statuses: number[] = [];
    await waitUntil(async () => {
      statuses.push((await freshRequest(port, 'GET', '/readyz')).status);
      return (perPid(server, '/readyz').get(replacement) ?? 0) >= 3 ? true : undefined;
    }, 'the replacement answering /readyz');
    expect(
      statuses.every((s) => s === 200),
      statuses.join(' '),
    ).toBe(true);
  }, 180_000);

  it('counts admin requests against one server-wide limit, failed authentications apart', async () => {
    const repository = makeTempDir('cluster-rate-limit');
    temps.push(repository);
    copyBundledModel('digits', repository);
    const limit = 5;
    const failureLimit = 3;
    const server = startServer(
      servingEnv(repository, '2', {
        ADMIN_RATE_LIMIT_PER_MINUTE: String(limit),
        ADMIN_AUTH_FAILURES_PER_MINUTE: String(failureLimit),
      }),
    );
    const port = await listeningPort(server, 2);
    await bothWorkersAnswer(server, port);
    const JOB = '00000000-0000-4000-8000-000000000000';
    /** `count` admin requests, 4 at a time on fresh connections (spread over the workers). */
    const burst = async (count: number, token: string) => {
      const statuses: number[] = [];
      let next = 0;
      const client = async () => {
        while (next++ < count) {
          const res = await freshRequest(port, 'GET', `/v1/jobs/${JOB}`, {
            headers: { authorization: `Bearer ${token}` },
          });
          statuses.push(res.status);
        }
      };
      await Promise.all(Array.from({ length: 4 }, client));
      return statuses.sort();
    };
    const wrong = await burst(8, 'wrong-token-0123456789abcdef');
    expect(wrong).toEqual([...Array(failureLimit).fill(401), ...Array(8 - failureLimit).fill(429)]);
    // The same address with the valid token still has its whole budget, once for the server.
    const valid = await burst(12, ADMIN_TOKEN);
    expect(valid).toEqual([...Array(limit).fill(404), ...Array(12 - limit).fill(429)]);
    // Both workers answered (each would have allowed `limit` on its own).
    await waitUntil(
      () => (server.logs.filter(isRequestLine('/v1/jobs/{id}')).length === 20 ? true : undefined),
      '20 admin request log lines',
    );
    const pids = new Set(server.logs.filter(isRequestLine('/v1/jobs/{id}')).map((l) => l.pid));
    expect(pids.size).toBe(2);
  }, 120_000);
});
