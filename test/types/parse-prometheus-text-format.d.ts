/** Types of parse-prometheus-text-format 1.1.1 (the package ships none), as its README documents. */
declare module 'parse-prometheus-text-format' {
  export interface PrometheusSample {
    value?: string;
    labels?: Record<string, string>;
    timestamp_ms?: string;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  export interface PrometheusFamily {
    name: string;
    help: string;
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED';
    metrics: PrometheusSample[];
  }
  /** Throws InvalidLineError on a line that is not valid text exposition format. */
  export default function parsePrometheusTextFormat(text: string): PrometheusFamily[];
}
