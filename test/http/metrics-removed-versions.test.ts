/**
 * /metrics drops the series of a version the registry no longer holds (deleted, its model
 * removed), and the cells cached for it, at the next scrape; a version that comes back starts its
 * series again. Read from the registry at each scrape, as the drift gauges are.
 */
import { describe, expect, it } from 'vitest';
import { ServiceMetrics } from '../../src/http/metrics.js';
import type { ModelRegistry, ModelSnapshot } from '../../src/service/index.js';

/** A registry holding `versions` of each model (only what the metrics read of it). */
function fakeRegistry(held: Record<string, number[]>): Pick<ModelRegistry, 'list' | 'scans'> {
  return {
    scans: 0,
    list: () =>
      Object.entries(held).map(
        ([name, versions]) =>
          ({
            name,
            versions: new Map(versions.map((v) => [v, { version: v, state: 'AVAILABLE' }])),
            active: versions.at(-1),
            activeRecord: undefined,
          }) as unknown as ModelSnapshot,
      ),
  };
}

const serve = (m: ServiceMetrics, version: string) => {
  m.observeRequest('POST', '/v2/models/:name/infer', '200', 'digits', version, 0.002);
  m.observeInference({
    model: 'digits',
    version: Number(version),
    rows: 4,
    computeMs: 0.5,
    fused: true,
  });
};

/** The cached cells' label values (the private `children` map). */
const cachedVersions = (m: ServiceMetrics) =>
  [...(m as unknown as { children: Map<string, unknown> }).children.values()].flatMap((entry) =>
    Object.values(entry as object)
      .map((cell) => (cell as { labels?: Record<string, string> }).labels?.version)
      .filter((v) => v !== undefined),
  );

describe('metrics of removed versions', () => {
  it('a deleted version loses its request and inference series and cached cells; others stay; it comes back from 0', async () => {
    const held: Record<string, number[]> = { digits: [1, 2, 3] };
    const m = new ServiceMetrics({ defaultMetrics: false });
    m.observeRegistry(fakeRegistry(held));
    for (const v of ['1', '2', '3']) serve(m, v);
    serve(m, '2');
    // A request that names no version (a 404 of an unknown model).
    m.observeRequest('GET', '/v2/models/:name', '404', 'nope', '', 0.001);
    let text = await m.registry.metrics();
    expect(text).toContain(
      'normserve_http_requests_total{method="POST",route="/v2/models/:name/infer",status="200",model="digits",version="2"} 2',
    );
    expect(cachedVersions(m)).toContain('2');

    held.digits = [1, 3];
    text = await m.registry.metrics();
    expect(text).not.toMatch(/version="2"/);
    expect(text).toContain(
      'normserve_http_requests_total{method="POST",route="/v2/models/:name/infer",status="200",model="digits",version="3"} 1',
    );
    expect(text).toContain(
      'normserve_inference_duration_seconds_count{model="digits",version="1",fused="true"} 1',
    );
    expect(text).toContain('status="404",model="nope",version=""} 1');
    // Per-model series stay while the model does.
    expect(text).toContain('normserve_batch_size_count{model="digits"} 4');
    expect(cachedVersions(m)).not.toContain('2');
    // What a server with WORKERS > 1 sends the primary is read the same way.
    const json = await m.serviceRegistry.getMetricsAsJSON();
    const versions = json
      .filter((f) => f.name === 'normserve_http_requests_total')
      .flatMap((f) => f.values.map((v) => v.labels.version));
    expect(versions.sort()).toEqual(['', '1', '3']);

    // The version is published again: its series start from 0 and count on.
    held.digits = [1, 2, 3];
    serve(m, '2');
    serve(m, '2');
    text = await m.registry.metrics();
    expect(text).toContain(
      'normserve_http_requests_total{method="POST",route="/v2/models/:name/infer",status="200",model="digits",version="2"} 2',
    );
    expect(text).toContain(
      'normserve_inference_duration_seconds_count{model="digits",version="2",fused="true"} 2',
    );

    // The model goes: all its versioned series with it.
    delete held.digits;
    text = await m.registry.metrics();
    expect(text).not.toMatch(/model="digits",version="\d/);
    expect(cachedVersions(m).filter((v) => v !== '')).toEqual([]);
  });
});
