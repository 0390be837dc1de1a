/**
 * A recalibrated version names its parent by reference (parent_version and the sha256 of the
 * parent's config.json and model.safetensors) and lists at most LINEAGE_ANCESTORS ancestors, so
 * its config.json does not grow with its generation. It used to embed its parent's whole
 * provenance (`previous`), nested once per generation: a config.json grew with the square of the
 * generation and generation 1,352 no longer fitted the 16 MiB a config.json may have. A parent
 * written in that nested form still loads, and its child is bounded.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LINEAGE_ANCESTORS } from '../../src/service/index.js';
import { ADMIN, float32Body, versionConfig } from '../helpers/admin.js';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';

const rows = nightShift(digitsTestRows().x).slice(0, 64);
const FLOAT32 = { ...ADMIN, 'content-type': 'application/octet-stream' };
const UNLIMITED = { ADMIN_RATE_LIMIT_PER_MINUTE: '100000' };
/** Generations of the nested chain given to a version in the older form. */
const NESTED_DEPTH = 300;

const fileSha256 = (t: TestApp, version: number, file: string) =>
  createHash('sha256')
    .update(readFileSync(join(t.repository, 'digits', String(version), file)))
    .digest('hex');
const configBytes = (t: TestApp, version: number) =>
  statSync(join(t.repository, 'digits', String(version), 'config.json')).size;

async function recalibrate(t: TestApp): Promise<number> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/models/digits:recalibrate',
    headers: FLOAT32,
    payload: float32Body(rows),
  });
  expect(res.statusCode, res.body).toBe(201);
  return (res.json() as { version: number }).version;
}

/** The provenance of a recalibrated version in the older form: `previous` nested `depth` deep. */
function nestedProvenance(depth: number): Record<string, unknown> {
  let provenance: Record<string, unknown> | null = null;
  for (let v = 1; v <= depth; v++) {
    provenance = {
      kind: 'recalibration',
      parent_version: v,
      mode: 'exact',
      samples: 128,
      data_sha256: 'f2617fe780110b973cdab4c67aea60276a05406af993067484f677029cc5d6a5',
      created_at: `2026-12-02T15:18:${String(v % 60).padStart(2, '0')}.756Z`,
      note: null,
      previous: provenance,
    };
  }
  return provenance!;
}

describe('a chain of recalibrations', () => {
  let t: TestApp;
  const versions: number[] = [];

  beforeAll(async () => {
    t = await makeTestApp({ env: UNLIMITED });
    for (let i = 0; i < LINEAGE_ANCESTORS + 5; i++) versions.push(await recalibrate(t));
  }, 600_000);
  afterAll(() => t.close());

  it('names each parent by reference and lists at most LINEAGE_ANCESTORS ancestors', () => {
    expect(versions).toEqual(Array.from({ length: LINEAGE_ANCESTORS + 5 }, (_, i) => i + 2));
    for (const v of versions) {
      const p = versionConfig(t.repository, 'digits', v).provenance!;
      expect(p).not.toHaveProperty('previous');
      expect(p).toMatchObject({
        kind: 'recalibration',
        parent_version: v - 1,
        parent_config_sha256: fileSha256(t, v - 1, 'config.json'),
        parent_weights_sha256: fileSha256(t, v - 1, 'model.safetensors'),
        trained_version: 1,
      });
      const ancestors = p.ancestors as { version: number; kind: string | null }[];
      // Parent first, then its ancestors down to the trained version 1 (kind null: no provenance).
      const expected = Array.from(
        { length: Math.min(v - 1, LINEAGE_ANCESTORS) },
        (_, i) => v - 1 - i,
      );
      expect(ancestors.map((a) => a.version)).toEqual(expected);
      for (const a of ancestors) {
        if (a.version === 1) expect(a).toEqual({ version: 1, kind: null });
        else expect(a).toMatchObject({ kind: 'recalibration', mode: 'exact' });
      }
    }
  });

  it('keeps config.json the same size once the list is full', () => {
    // Full of recalibrations: the trained version 1 (a shorter entry) is out of the list.
    const full = versions.filter((v) => v - 1 > LINEAGE_ANCESTORS);
    expect(full.length).toBeGreaterThan(3);
    // Equal up to the digits of the version numbers in it.
    const sizes = full.map((v) => configBytes(t, v));
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThan(3 * (LINEAGE_ANCESTORS + 1));
  });

  it('metadata names the trained version at the end of the chain', async () => {
    const last = versions.at(-1)!;
    const meta = (
      await t.app.inject({ method: 'GET', url: `/v1/models/digits/versions/${last}/metadata` })
    ).json() as Record<string, unknown>;
    expect(meta).toMatchObject({ version: last, trained_version: 1 });
    expect(meta.provenance).toMatchObject({ parent_version: last - 1, trained_version: 1 });
  });
});

describe('a parent whose provenance nests its whole chain (the older form)', () => {
  let t: TestApp;
  let repository: string;

  beforeAll(async () => {
    repository = makeRepository(['digits']);
    const one = join(repository, 'digits', '1');
    const two = join(repository, 'digits', '2');
    mkdirSync(two);
    const config = JSON.parse(readFileSync(join(one, 'config.json'), 'utf8'));
    config.provenance = nestedProvenance(NESTED_DEPTH);
    writeFileSync(join(two, 'config.json'), JSON.stringify(config));
    for (const f of ['model.safetensors', 'metrics.json']) copyFileSync(join(one, f), join(two, f));
    t = await makeTestApp({ repository, env: UNLIMITED });
  }, 120_000);
  afterAll(async () => {
    await t.close();
    rmSync(repository, { recursive: true, force: true });
  });

  it('loads, and metadata follows its chain to the trained version', async () => {
    const meta = (
      await t.app.inject({ method: 'GET', url: '/v1/models/digits/versions/2/metadata' })
    ).json() as Record<string, unknown>;
    expect(meta).toMatchObject({ version: 2, trained_version: 1 });
    expect(meta.provenance).toMatchObject({ parent_version: NESTED_DEPTH });
  });

  it('its child keeps a reference to it and a bounded list, not the nested chain', async () => {
    expect(configBytes(t, 2)).toBeGreaterThan(10 * configBytes(t, 1));
    const v = await recalibrate(t);
    expect(v).toBe(3);
    const p = versionConfig(t.repository, 'digits', 3).provenance!;
    expect(p).not.toHaveProperty('previous');
    expect(p).toMatchObject({
      parent_version: 2,
      parent_config_sha256: fileSha256(t, 2, 'config.json'),
      trained_version: 1,
    });
    const ancestors = p.ancestors as { version: number }[];
    expect(ancestors).toHaveLength(LINEAGE_ANCESTORS);
    // The parent, then the links of its nested chain, newest first.
    expect(ancestors.map((a) => a.version)).toEqual([
      2,
      ...Array.from({ length: LINEAGE_ANCESTORS - 1 }, (_, i) => NESTED_DEPTH - i),
    ]);
    expect(ancestors[1]).toEqual({
      version: NESTED_DEPTH,
      kind: 'recalibration',
      mode: 'exact',
      created_at: `2026-12-02T15:18:${String((NESTED_DEPTH - 1) % 60).padStart(2, '0')}.756Z`,
    });
    // Version 1's config.json plus a provenance of a few lines, not version 2's chain.
    expect(configBytes(t, 3)).toBeLessThan(configBytes(t, 1) + 4096);
    const metrics = readFileSync(join(t.repository, 'digits', '3', 'metrics.json'), 'utf8');
    expect(metrics).not.toContain('"previous"');
  });
});
