/**
 * What the repository says of the versions AUTO_RECALIBRATE published (traffic-lineage.ts): the
 * newest one's time, for AUTO_RECALIBRATE_INTERVAL_MS, read from provenance's `created_at` of the
 * versions that loaded; a time ahead of this clock (another replica's clock runs ahead) counts as
 * now, so it never holds the recalibrations back past the interval (second reading, 2026-12-06).
 */
import { describe, expect, it } from 'vitest';
import type { ModelSnapshot } from '../../src/service/index.js';
import { lastTrafficRecalibration } from '../../src/service/traffic-lineage.js';

/** A snapshot whose versions carry these provenances (AVAILABLE unless `failed`). */
function snapshot(
  versions: { version: number; provenance?: unknown; failed?: boolean }[],
): ModelSnapshot {
  return {
    name: 'digits',
    versions: new Map(
      versions.map(({ version, provenance, failed }) => [
        version,
        failed
          ? { version, state: 'FAILED' }
          : { version, state: 'AVAILABLE', checkpoint: { config: { provenance } } },
      ]),
    ),
  } as unknown as ModelSnapshot;
}

const traffic = (created_at: string) => ({
  kind: 'recalibration',
  source: 'traffic',
  parent_version: 1,
  created_at,
});

describe('lastTrafficRecalibration', () => {
  it('is the newest version recalibrated from traffic, by created_at, among those that loaded', () => {
    const found = lastTrafficRecalibration(
      snapshot([
        { version: 1 },
        { version: 2, provenance: traffic('2026-12-06T10:00:00.000Z') },
        { version: 3, provenance: { ...traffic('2026-12-06T11:00:00.000Z'), source: 'upload' } },
        { version: 4, provenance: traffic('2026-12-06T09:00:00.000Z') },
        { version: 5, failed: true },
      ]),
    );
    expect(found).toEqual({ version: 2, createdAtMs: Date.parse('2026-12-06T10:00:00.000Z') });
    expect(lastTrafficRecalibration(snapshot([{ version: 1 }]))).toBeUndefined();
  });

  it('a created_at ahead of this clock counts as now', () => {
    const before = Date.now();
    const found = lastTrafficRecalibration(
      snapshot([{ version: 2, provenance: traffic('2099-01-01T00:00:00.000Z') }]),
    );
    expect(found!.createdAtMs).toBeGreaterThanOrEqual(before);
    expect(found!.createdAtMs).toBeLessThanOrEqual(Date.now());
  });
});
