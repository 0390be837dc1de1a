import type { Counter, Histogram } from 'prom-client';

/**
 * A counter or histogram bound to one set of label values, updated per request without
 * prom-client's per-call work. `labels(...).inc()` / `.observe()` validate the label names, build
 * a label object, hash it into a string and look the series up on every call (a few µs per update
 * and four updates per request: bench/README.md, "Third round"). A bound cell keeps the series'
 * state object that prom-client 15 stores in the metric's `hashMap` (`{ value }` for a counter,
 * `{ sum, count, bucketValues }` for a histogram, whose buckets are the counts per upper bound,
 * made cumulative when read) and adds to it directly; while the cell is not (or no longer, after
 * `reset()`) the one in `hashMap`, the update goes through prom-client's own call and the cell is
 * taken again. What prom-client serves is unchanged (test/http/metric-cells.test.ts holds a bound
 * cell to prom-client's own calls, reset included).
 */

/** prom-client's internal view of a metric: its series by label hash. */
interface WithSeries<Cell> {
  hashMap: Record<string, Cell>;
}
interface CounterCell {
  value: number;
  labels: Record<string, string>;
}
interface HistogramCell {
  sum: number;
  count: number;
  bucketValues: Record<string, number>;
  labels: Record<string, string>;
}

/** The key of the series with exactly these label values, or undefined. */
function seriesKey(
  hashMap: Record<string, { labels: Record<string, string> }>,
  labels: Record<string, string>,
): string | undefined {
  const names = Object.keys(labels);
  for (const key in hashMap) {
    const seen = hashMap[key]!.labels;
    if (Object.keys(seen).length === names.length && names.every((n) => seen[n] === labels[n]))
      return key;
  }
  return undefined;
}

/**
 * Removes the series of `metric` whose label values `keep` refuses (prom-client's own `remove`);
 * a bound cell of one takes the series again on its next update (a removed series is not the one
 * in `hashMap` any more), which starts again from 0.
 */
export function removeSeries(
  metric: Counter<string> | Histogram<string>,
  keep: (labels: Readonly<Record<string, string>>) => boolean,
): void {
  const series = (metric as unknown as WithSeries<{ labels: Record<string, string> }>).hashMap;
  for (const key of Object.keys(series)) {
    const labels = series[key]!.labels;
    if (!keep(labels)) metric.remove(labels);
  }
}

export class BoundCounter {
  private key: string | undefined;
  private cell: CounterCell | undefined;

  constructor(
    private readonly metric: Counter<string>,
    /** The series' label values. */
    readonly labels: Readonly<Record<string, string>>,
  ) {}

  inc(): void {
    const cell = this.cell;
    const series = (this.metric as unknown as WithSeries<CounterCell>).hashMap;
    if (cell !== undefined && series[this.key!] === cell) {
      cell.value += 1;
      return;
    }
    this.metric.inc(this.labels);
    this.key = seriesKey(series, this.labels);
    this.cell = this.key === undefined ? undefined : series[this.key];
  }
}

export class BoundHistogram {
  private key: string | undefined;
  private cell: HistogramCell | undefined;
  private readonly upperBounds: readonly number[];
  /**
   * The bucket keys, as the property names prom-client gave them: indexing by the number itself
   * would convert it to a string on every observation (a runtime call for a fraction like 0.0005).
   */
  private bucketKeys: string[] = [];

  constructor(
    private readonly metric: Histogram<string>,
    /** The series' label values. */
    readonly labels: Readonly<Record<string, string>>,
  ) {
    this.upperBounds = (metric as unknown as { upperBounds: readonly number[] }).upperBounds;
  }

  observe(value: number): void {
    const cell = this.cell;
    const series = (this.metric as unknown as WithSeries<HistogramCell>).hashMap;
    if (cell === undefined || series[this.key!] !== cell || !Number.isFinite(value)) {
      // prom-client's own call (it also throws on a value that is not finite).
      this.metric.observe(this.labels, value);
      this.key = seriesKey(series, this.labels);
      this.cell = this.key === undefined ? undefined : series[this.key];
      if (this.cell) {
        const keys = Object.keys(this.cell.bucketValues);
        this.bucketKeys = this.upperBounds.map((b) => keys.find((k) => Number(k) === b)!);
      }
      return;
    }
    // The first upper bound ≥ value (prom-client's findBound); above the last, no bucket (+Inf
    // is the count).
    const bounds = this.upperBounds;
    for (let i = 0; i < bounds.length; i++) {
      const bound = bounds[i]!;
      if (value <= bound) {
        cell.bucketValues[this.bucketKeys[i]!]! += 1;
        break;
      }
    }
    cell.sum += value;
    cell.count += 1;
  }
}
