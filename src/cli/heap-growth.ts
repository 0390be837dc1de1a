import { setFlagsFromString } from 'node:v8';

/**
 * Sets V8's old-generation growth factor (`--heap-growing-percent`) for this process, from
 * V8_HEAP_GROWING_PERCENT; 0 leaves V8's own heuristic. Why: V8 counts the external memory
 * allocated since the last full collection (the ArrayBuffers of request bodies and tensors that
 * live through two scavenges) against the old generation's limit, and starts incremental marking
 * once what is left is below the young generation's capacity. With the ~1.8× factor V8 picked for
 * the server's ~25 MiB heap that left about 7 MiB, and 256-row float32 requests ran a full
 * collection every ~400 requests, its concurrent marking taking four threads (bench/README.md,
 * "Seventh round"). V8 reads the flag at each collection, so setting it at start-up takes effect.
 */
export function applyHeapGrowingPercent(
  percent: number,
  setFlags: (flags: string) => void = setFlagsFromString,
): void {
  if (percent > 0) setFlags(`--heap-growing-percent=${percent}`);
}
