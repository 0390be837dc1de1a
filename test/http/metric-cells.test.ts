import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BoundCounter, BoundHistogram } from '../../src/http/metric-cells.js';

/** One registry with a counter and a histogram of the same names in each (bound vs prom-client). */
function metricsPair() {
  const make = () => {
    const registry = new Registry();
    const counter = new Counter({
      name: 'c_total',
      help: 'c',
      labelNames: ['route', 'status'],
      registers: [registry],
    });
    const histogram = new Histogram({
      name: 'h_seconds',
      help: 'h',
      labelNames: ['route'],
      buckets: [0.001, 0.01, 0.1, 1],
      registers: [registry],
    });
    return { registry, counter, histogram };
  };
  return { bound: make(), plain: make() };
}

describe('bound metric cells', () => {
  it('serve what prom-client serves for the same updates, across reset() and other label sets', async () => {
    const { bound, plain } = metricsPair();
    const c = new BoundCounter(bound.counter, { route: '/a', status: '200' });
    const h = new BoundHistogram(bound.histogram, { route: '/a' });
    // Values below, at and between bounds, above the last bound, zero.
    const values = [0.0005, 0.001, 0.005, 0.01, 0.5, 1, 3, 0, 0.0999];
    const apply = () => {
      for (const v of values) {
        c.inc();
        plain.counter.inc({ route: '/a', status: '200' });
        h.observe(v);
        plain.histogram.observe({ route: '/a' }, v);
      }
    };
    apply();
    // Another label set written through prom-client on both sides, between bound updates.
    bound.counter.inc({ route: '/b', status: '404' }, 2);
    plain.counter.inc({ route: '/b', status: '404' }, 2);
    apply();
    expect(await bound.registry.metrics()).toBe(await plain.registry.metrics());
    // After a reset the cells are prom-client's new series, not the dropped ones.
    bound.registry.resetMetrics();
    plain.registry.resetMetrics();
    expect(await bound.registry.metrics()).toBe(await plain.registry.metrics());
    apply();
    expect(await bound.registry.metrics()).toBe(await plain.registry.metrics());
    expect(await bound.registry.metrics()).toContain('h_seconds_bucket{le="0.01",route="/a"} 5');
  });

  it('refuses a value that is not finite, as prom-client does', () => {
    const { bound } = metricsPair();
    const h = new BoundHistogram(bound.histogram, { route: '/a' });
    h.observe(0.5);
    expect(() => h.observe(Number.NaN)).toThrow(TypeError);
    expect(() => h.observe(Number.POSITIVE_INFINITY)).toThrow(TypeError);
  });
});
