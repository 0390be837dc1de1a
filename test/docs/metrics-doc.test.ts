/**
 * docs/observability.md's table of metric families (section "Metrics") against what `/metrics`
 * serves: one row per normserve family with its type, none missing and none invented. The
 * families are read from the exposition text: an app's GET /metrics (WORKERS=1) and the cluster
 * primary's own families (WORKERS > 1, scraped with no worker). prom-client's default process and
 * Node.js metrics are not rows: the document names them by prefix, and the `_total` gauges among
 * them by name.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterMetricsPrimary } from '../../src/cli/cluster-metrics.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';

const doc = readFileSync(new URL('../../docs/observability.md', import.meta.url), 'utf8');

/** `# TYPE name type` lines of an exposition text: family name → type. */
function families(text: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) found.set(match[1]!, match[2]!);
  return found;
}

/** prom-client's default metrics (collectDefaultMetrics, prefix normserve_). */
const isDefault = (name: string) => /^normserve_(process|nodejs)_/.test(name);

/** The document's rows: `| \`normserve_…\` | type | labels | what |`. */
function documented(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const match of doc.matchAll(/^\| `(normserve_[a-z_]+)` \| (\w+) \|/gm)) {
    expect(rows.has(match[1]!), `${match[1]} has two rows`).toBe(false);
    rows.set(match[1]!, match[2]!);
  }
  return rows;
}

describe('docs/observability.md metric families', () => {
  let t: TestApp;
  let served: Map<string, string>;

  beforeAll(async () => {
    t = await makeTestApp();
    const res = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    served = families(res.body);
    for (const [name, type] of families(await new ClusterMetricsPrimary().scrape()))
      served.set(name, type);
  });

  afterAll(async () => {
    await t?.close();
  });

  it('lists every family /metrics serves, with its type, and no other', () => {
    const own = new Map([...served].filter(([name]) => !isDefault(name)));
    // The families the table was written for, among them those that were missing from the docs.
    for (const name of [
      'normserve_http_requests_total',
      'normserve_grpc_request_duration_seconds',
      'normserve_model_load_failures_total',
      'normserve_recalibrations_total',
      'normserve_repository_scans_total',
      'normserve_cluster_workers',
    ])
      expect(own.has(name), name).toBe(true);
    expect(Object.fromEntries(documented())).toEqual(Object.fromEntries(own));
  });

  it("names prom-client's gauges that end in _total, which are its names and not counters", () => {
    const totals = [...served].filter(
      ([name, type]) => isDefault(name) && name.endsWith('_total') && type === 'gauge',
    );
    expect(totals.length).toBeGreaterThan(0);
    for (const [name] of totals) expect(doc, name).toContain(`\`${name}\``);
    expect(doc).toContain('`normserve_process_*`, `normserve_nodejs_*`');
  });
});
