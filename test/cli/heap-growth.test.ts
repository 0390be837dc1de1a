import { describe, expect, it } from 'vitest';
import { applyHeapGrowingPercent } from '../../src/cli/heap-growth.js';
import { parseServerConfig } from '../../src/service/index.js';

describe('V8_HEAP_GROWING_PERCENT', () => {
  it('defaults to 200 and is bounded by V8 own largest factor (4x, 300 %)', () => {
    expect(parseServerConfig({}).V8_HEAP_GROWING_PERCENT).toBe(200);
    expect(parseServerConfig({ V8_HEAP_GROWING_PERCENT: '0' }).V8_HEAP_GROWING_PERCENT).toBe(0);
    expect(() => parseServerConfig({ V8_HEAP_GROWING_PERCENT: '301' })).toThrow(
      /V8_HEAP_GROWING_PERCENT/,
    );
    expect(() => parseServerConfig({ V8_HEAP_GROWING_PERCENT: '-1' })).toThrow(
      /V8_HEAP_GROWING_PERCENT/,
    );
  });

  it("sets V8's flag for a percentage and leaves V8's heuristic alone for 0", () => {
    const flags: string[] = [];
    applyHeapGrowingPercent(200, (f) => flags.push(f));
    applyHeapGrowingPercent(0, (f) => flags.push(f));
    expect(flags).toEqual(['--heap-growing-percent=200']);
  });
});
