/**
 * Damaged versions on disk: a truncated or corrupted model.safetensors or config.json of a
 * version that is not served marks that version (only) FAILED, with a reason naming the file and
 * the broken rule in GET /v1/models/{name}, while the active version keeps serving the same bytes.
 * A damaged version appearing while the server runs (refresh) does not disturb serving either.
 */
import { cpSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, expectProblem, predictRows } from '../helpers/admin.js';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows } from '../helpers/digits.js';

const rows = digitsTestRows().x.slice(0, 40);
const WEIGHTS = 'model.safetensors';
const CONFIG = 'config.json';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A repository with digits/1 and a byte copy of it as digits/2 (a valid version). */
function repositoryWithTwoVersions(activeRecord: number | undefined): string {
  const repository = makeRepository(['digits']);
  made.push(repository);
  cpSync(join(repository, 'digits', '1'), join(repository, 'digits', '2'), { recursive: true });
  if (activeRecord !== undefined) {
    writeFileSync(
      join(repository, 'digits', 'active-version.json'),
      JSON.stringify({ version: activeRecord, updated_at: new Date().toISOString() }),
    );
  }
  return repository;
}

const editBytes = (path: string, edit: (b: Buffer) => Buffer | undefined) => {
  const bytes = readFileSync(path);
  writeFileSync(path, edit(bytes) ?? bytes);
};
const editConfig = (
  dir: string,
  edit: (c: Record<string, unknown> & { layers: Record<string, unknown>[] }) => void,
) =>
  editBytes(join(dir, CONFIG), (b) => {
    const config = JSON.parse(b.toString('utf8'));
    edit(config);
    return Buffer.from(JSON.stringify(config));
  });

/** Offset of a tensor's data in a safetensors file (header length prefix + header + offset). */
function tensorOffset(bytes: Buffer, name: string): number {
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { data_offsets: [number, number] }
  >;
  return 8 + headerLength + header[name]!.data_offsets[0];
}

const corruptions: { what: string; damage: (dir: string) => void; reason: RegExp }[] = [
  {
    what: 'model.safetensors truncated to half',
    damage: (d) => editBytes(join(d, WEIGHTS), (b) => b.subarray(0, b.length >> 1)),
    reason: /model\.safetensors: truncated: tensors need \d+ bytes of data/,
  },
  {
    what: 'model.safetensors truncated to 4 bytes',
    damage: (d) => truncateSync(join(d, WEIGHTS), 4),
    reason: /model\.safetensors: file is 4 bytes, too short for the 8-byte header length/,
  },
  {
    what: 'model.safetensors emptied',
    damage: (d) => truncateSync(join(d, WEIGHTS), 0),
    reason: /model\.safetensors: file is 0 bytes/,
  },
  {
    what: 'model.safetensors with a huge header length',
    damage: (d) =>
      editBytes(join(d, WEIGHTS), (b) => {
        b.writeBigUInt64LE(10n ** 12n, 0);
        return b;
      }),
    reason: /model\.safetensors: header length 1000000000000 exceeds the limit/,
  },
  {
    what: 'model.safetensors with a garbled header',
    damage: (d) =>
      editBytes(join(d, WEIGHTS), (b) => {
        b[8] = 0x78;
        return b;
      }),
    reason: /model\.safetensors: header must start with '\{'/,
  },
  {
    what: 'model.safetensors with trailing bytes',
    damage: (d) => editBytes(join(d, WEIGHTS), (b) => Buffer.concat([b, Buffer.alloc(4)])),
    reason: /model\.safetensors: 4 trailing bytes after the last tensor/,
  },
  {
    what: 'model.safetensors with a NaN weight',
    damage: (d) =>
      editBytes(join(d, WEIGHTS), (b) => {
        b.writeFloatLE(Number.NaN, tensorOffset(b, '4.weight') + 12);
        return b;
      }),
    reason: /tensor "4\.weight" holds a non-finite value at index 3/,
  },
  {
    what: 'model.safetensors with a negative running variance',
    damage: (d) =>
      editBytes(join(d, WEIGHTS), (b) => {
        b.writeFloatLE(-1, tensorOffset(b, '1.running_var') + 8);
        return b;
      }),
    reason: /tensor "1\.running_var" holds a negative variance at index 2/,
  },
  {
    what: 'model.safetensors deleted',
    damage: (d) => rmSync(join(d, WEIGHTS)),
    reason: /digits\/2: model\.safetensors is missing/,
  },
  {
    what: 'config.json truncated to half',
    damage: (d) => editBytes(join(d, CONFIG), (b) => b.subarray(0, b.length >> 1)),
    reason: /config\.json: not valid JSON/,
  },
  {
    what: 'config.json emptied',
    damage: (d) => truncateSync(join(d, CONFIG), 0),
    reason: /config\.json: not valid JSON \(Unexpected end of JSON input\)/,
  },
  {
    // Terminal escapes in the file never reach a terminal, a log or /readyz raw (V8 quotes the
    // text around a JSON error).
    what: 'config.json starting with terminal escapes',
    damage: (d) => writeFileSync(join(d, CONFIG), '\x1b[2J\x07{"name": 1}'),
    reason: /^\P{Cc}*config\.json: not valid JSON \(\P{Cc}*\)$/u,
  },
  {
    what: 'config.json not UTF-8',
    damage: (d) =>
      editBytes(join(d, CONFIG), (b) =>
        Buffer.concat([b.subarray(0, 20), Buffer.from([0xff, 0xfe]), b.subarray(20)]),
      ),
    reason: /config\.json: not valid UTF-8$/,
  },
  {
    what: 'config.json deleted',
    damage: (d) => rmSync(join(d, CONFIG)),
    reason: /digits\/2: config\.json is missing/,
  },
  {
    what: 'config.json naming another model',
    damage: (d) =>
      editConfig(d, (c) => {
        c.name = 'other';
      }),
    reason: /config\.json: name "other" does not match the model directory "digits"/,
  },
  {
    what: 'config.json with an unknown layer type',
    damage: (d) =>
      editConfig(d, (c) => {
        c.layers[2]!.type = 'swish';
      }),
    reason: /config\.json: layers\[2\]\.type: unknown layer type "swish"/,
  },
  {
    what: 'config.json whose shapes no longer match the tensors',
    damage: (d) =>
      editConfig(d, (c) => {
        c.layers[0]!.out_features = 100;
        c.layers[1]!.num_features = 100;
        c.layers[4]!.in_features = 100;
      }),
    reason: /model\.safetensors: tensor "0\.weight" has shape \[128,64\], expected \[100,64\]/,
  },
];

interface VersionStatus {
  version: string;
  state: string;
  status: { error_code: string; error_message: string };
  active: boolean;
}

async function expectOnlyVersion2Failed(t: TestApp, reason: RegExp): Promise<void> {
  const res = await t.app.inject({ method: 'GET', url: '/v1/models/digits' });
  expect(res.statusCode).toBe(200);
  const status = res.json<{ model_version_status: VersionStatus[] }>().model_version_status;
  expect(status.map((s) => [s.version, s.state, s.active])).toEqual([
    ['2', 'FAILED', false],
    ['1', 'AVAILABLE', true],
  ]);
  expect(status[0]!.status.error_code).toBe('UNKNOWN');
  expect(status[0]!.status.error_message).toMatch(reason);
  expect(status[1]!.status).toEqual({ error_code: 'OK', error_message: '' });
  // Unauthenticated routes name files relative to the repository, never by absolute path.
  expect(res.body).not.toContain(t.repository);
  const listing = await t.app.inject({ method: 'GET', url: '/v1/models/digits/versions' });
  expect(listing.json()).toMatchObject({
    active_version: 1,
    state: 'AVAILABLE',
    versions: [
      { version: 1, state: 'AVAILABLE', active: true },
      { version: 2, state: 'FAILED', active: false, reason: expect.stringMatching(reason) },
    ],
  });
}

describe('a damaged version that is not served', () => {
  let baseline = '';
  beforeAll(async () => {
    const t = await makeTestApp();
    try {
      baseline = (await predictRows(t.app, 'digits', rows)).res.body;
    } finally {
      await t.close();
    }
  });

  for (const { what, damage, reason } of corruptions) {
    it(`${what}: version 2 FAILED naming the file and rule, version 1 serves unchanged`, async () => {
      const repository = repositoryWithTwoVersions(1);
      damage(join(repository, 'digits', '2'));
      const t = await makeTestApp({ repository });
      try {
        await expectOnlyVersion2Failed(t, reason);
        const served = await predictRows(t.app, 'digits', rows);
        expect(served.res.headers['x-model-version']).toBe('1');
        expect(served.res.body).toBe(baseline);
        const explicit = await t.app.inject({
          method: 'POST',
          url: '/v1/models/digits/versions/2:predict',
          payload: { instances: rows.slice(0, 1) },
        });
        const problem = expectProblem(explicit, 404, 'VERSION_NOT_FOUND');
        expect(problem.detail).toMatch(reason);
        expect(
          (await t.app.inject({ method: 'GET', url: '/v2/models/digits/ready' })).statusCode,
        ).toBe(200);
        expect(
          (await t.app.inject({ method: 'GET', url: '/v2/models/digits/versions/2/ready' }))
            .statusCode,
        ).toBe(503);
        expect((await t.app.inject({ method: 'GET', url: '/v2/health/ready' })).statusCode).toBe(
          200,
        );
        // Activating the damaged version is refused; the active one stays.
        const activate = await t.app.inject({
          method: 'POST',
          url: '/v1/models/digits/versions/2:activate',
          headers: ADMIN,
        });
        expectProblem(activate, 404, 'VERSION_NOT_FOUND');
        expect((await predictRows(t.app, 'digits', rows)).res.body).toBe(baseline);
      } finally {
        await t.close();
      }
    });
  }

  it('without an active-version record, a damaged highest version is skipped: the highest AVAILABLE one serves', async () => {
    const repository = repositoryWithTwoVersions(undefined);
    truncateSync(join(repository, 'digits', '2', WEIGHTS), 100);
    const t = await makeTestApp({ repository });
    try {
      await expectOnlyVersion2Failed(t, /model\.safetensors/);
      expect((await predictRows(t.app, 'digits', rows)).res.body).toBe(baseline);
    } finally {
      await t.close();
    }
  });
});

describe('a damaged version appearing while serving (refresh)', () => {
  let t: TestApp;
  let baseline = '';
  beforeAll(async () => {
    t = await makeTestApp();
    baseline = (await predictRows(t.app, 'digits', rows)).res.body;
  });
  afterAll(async () => {
    await t.close();
  });

  it('is marked FAILED and does not disturb predictions, even half-written during refreshes', async () => {
    const v1 = join(t.repository, 'digits', '1');
    const v3 = join(t.repository, 'digits', '3');
    const weights = readFileSync(join(v1, WEIGHTS));
    let stop = false;
    const bodies: string[] = [];
    const failures: string[] = [];
    const clients = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const res = await t.app.inject({
          method: 'POST',
          url: '/v1/models/digits:predict',
          payload: { instances: rows },
        });
        if (res.statusCode === 200) bodies.push(res.body);
        else failures.push(`${res.statusCode} ${res.body}`);
      }
    });
    // An operator copies a version in by hand, non-atomically, while the server polls.
    await mkdir(v3);
    await t.registry.refresh();
    await writeFile(join(v3, CONFIG), readFileSync(join(v1, CONFIG)));
    await t.registry.refresh();
    await writeFile(join(v3, WEIGHTS), weights.subarray(0, 1000));
    await t.registry.refresh();
    await new Promise((resolve) => setTimeout(resolve, 50));
    stop = true;
    await Promise.all(clients);

    expect(failures).toEqual([]);
    expect(bodies.length).toBeGreaterThan(10);
    expect(new Set(bodies)).toEqual(new Set([baseline]));
    const listing = await t.app.inject({ method: 'GET', url: '/v1/models/digits/versions' });
    expect(listing.json()).toMatchObject({
      active_version: 1,
      versions: [
        { version: 1, state: 'AVAILABLE', active: true },
        {
          version: 3,
          state: 'FAILED',
          reason: expect.stringMatching(
            /digits\/3\/model\.safetensors: header length \d+ exceeds the 992 bytes/,
          ),
        },
      ],
    });
  });

  it('is retried when its files change: once complete it loads, and a recorded active version stays served', async () => {
    const activate = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits/versions/1:activate',
      headers: ADMIN,
    });
    expect(activate.statusCode).toBe(200);
    const v1 = join(t.repository, 'digits', '1');
    await writeFile(join(t.repository, 'digits', '3', WEIGHTS), readFileSync(join(v1, WEIGHTS)));
    await t.registry.refresh();
    const listing = await t.app.inject({ method: 'GET', url: '/v1/models/digits/versions' });
    expect(listing.json()).toMatchObject({
      active_version: 1,
      versions: [
        { version: 1, state: 'AVAILABLE', active: true },
        { version: 3, state: 'AVAILABLE', active: false },
      ],
    });
    expect((await predictRows(t.app, 'digits', rows)).res.body).toBe(baseline);
    expect((await predictRows(t.app, 'digits', rows, 3)).model_version).toBe(3);
  });

  it('a served version damaged on disk keeps serving from memory; a restart marks it FAILED and serves no other version until one is activated', async () => {
    truncateSync(join(t.repository, 'digits', '1', WEIGHTS), 10);
    await t.registry.refresh();
    expect((await predictRows(t.app, 'digits', rows)).res.body).toBe(baseline);
    const restarted = await makeTestApp({ repository: t.repository });
    try {
      const listing = await restarted.app.inject({
        method: 'GET',
        url: '/v1/models/digits/versions',
      });
      // The record names version 1, which no longer loads: no other version is served in its
      // place (version 3 was never activated), and the listing says why.
      expect(listing.json()).toMatchObject({
        active_version: null,
        state: 'UNAVAILABLE',
        active_record_error: expect.stringMatching(
          /^digits\/active-version\.json names version 1, which failed to load: digits\/1\/model\.safetensors/,
        ),
        versions: [
          { version: 1, state: 'FAILED', reason: expect.stringMatching(/model\.safetensors/) },
          { version: 3, state: 'AVAILABLE', active: false },
        ],
      });
      const refused = await restarted.app.inject({
        method: 'POST',
        url: '/v1/models/digits:predict',
        payload: { instances: rows },
      });
      expect(expectProblem(refused, 503, 'MODEL_UNAVAILABLE').detail).toMatch(
        /names version 1, which failed to load/,
      );
      // Activating version 3 (a byte copy of version 1) repairs it.
      const activate = await restarted.app.inject({
        method: 'POST',
        url: '/v1/models/digits/versions/3:activate',
        headers: ADMIN,
      });
      expect(activate.statusCode, activate.body).toBe(200);
      const served = await predictRows(restarted.app, 'digits', rows);
      expect(served.model_version).toBe(3);
      expect(served.res.body).toBe(baseline.replace('"model_version":1', '"model_version":3'));
      const repaired = await restarted.app.inject({ url: '/v1/models/digits/versions' });
      expect(repaired.json()).not.toHaveProperty('active_record_error');
    } finally {
      await restarted.close();
    }
  });
});

describe('an active-version record that cannot be followed', () => {
  /** digits/1 active, digits/2 published with activate=false (the highest, never activated). */
  async function servingV1WithInactiveV2(): Promise<TestApp> {
    const t = await makeTestApp({ repository: repositoryWithTwoVersions(1) });
    expect((await predictRows(t.app, 'digits', rows)).model_version).toBe(1);
    return t;
  }
  const recordPath = (t: TestApp) => join(t.repository, 'digits', 'active-version.json');
  const gauge = async (t: TestApp) =>
    /^normserve_model_active_record_invalid\{model="digits"\} (\d)$/m.exec(
      (await t.app.inject({ url: '/metrics' })).body,
    )?.[1];

  const broken: { what: string; content: string; problem: RegExp }[] = [
    {
      what: 'garbage',
      content: 'not json {',
      // The reason in parentheses is V8's own (its wording is Node's, not ours).
      problem: /^digits\/active-version\.json: not valid JSON \([^\n]+\)$/,
    },
    {
      what: 'a version that is not a positive integer',
      content: '{"version":"2"}',
      problem: /^digits\/active-version\.json: version: /,
    },
    {
      what: 'a missing version',
      content: '{"version":7}',
      problem: /^digits\/active-version\.json names version 7, which does not exist$/,
    },
  ];

  for (const { what, content, problem } of broken) {
    it(`${what}: the last active version keeps serving, reported in status, /readyz and /metrics`, async () => {
      const t = await servingV1WithInactiveV2();
      try {
        expect(await gauge(t)).toBe('0');
        writeFileSync(recordPath(t), content);
        await t.registry.refresh();
        // Not the highest version (2, never activated): the one served before.
        expect((await predictRows(t.app, 'digits', rows)).res.body).toBe(
          (await predictRows(t.app, 'digits', rows, 1)).res.body,
        );
        const status = (await t.app.inject({ url: '/v1/models/digits' })).json<{
          active_record_error?: string;
          model_version_status: VersionStatus[];
        }>();
        expect(status.active_record_error).toMatch(problem);
        expect(status.model_version_status.find((v) => v.active)?.version).toBe('1');
        const listing = (await t.app.inject({ url: '/v1/models' })).json<{
          models: { active_version: number; active_record_error?: string }[];
        }>();
        expect(listing.models[0]).toMatchObject({ active_version: 1 });
        expect(listing.models[0]!.active_record_error).toMatch(problem);
        const ready = await t.app.inject({ url: '/readyz' });
        expect(ready.statusCode).toBe(200);
        expect(ready.json()).toMatchObject({
          status: 'ready',
          models: [{ name: 'digits', ready: true, active_version: 1 }],
        });
        expect(ready.json().models[0].active_record_error).toMatch(problem);
        expect(await gauge(t)).toBe('1');
        // Public reasons name files relative to the repository, never by absolute path.
        expect(JSON.stringify(status)).not.toContain(t.repository);

        // An activation repairs the record.
        const activate = await t.app.inject({
          method: 'POST',
          url: '/v1/models/digits/versions/1:activate',
          headers: ADMIN,
        });
        expect(activate.statusCode, activate.body).toBe(200);
        expect((await t.app.inject({ url: '/v1/models/digits' })).json()).not.toHaveProperty(
          'active_record_error',
        );
        expect(await gauge(t)).toBe('0');
      } finally {
        await t.close();
      }
    });
  }

  it('at start-up (no last active version) the model serves nothing, says why, and is not ready', async () => {
    const repository = repositoryWithTwoVersions(1);
    writeFileSync(join(repository, 'digits', 'active-version.json'), 'not json {');
    const t = await makeTestApp({ repository });
    try {
      const refused = await t.app.inject({
        method: 'POST',
        url: '/v1/models/digits:predict',
        payload: { instances: rows },
      });
      expect(expectProblem(refused, 503, 'MODEL_UNAVAILABLE').detail).toMatch(
        /digits\/active-version\.json: not valid JSON/,
      );
      const ready = await t.app.inject({ url: '/readyz' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json().models[0]).toMatchObject({
        ready: false,
        active_version: null,
        // V8's reason in parentheses.
        active_record_error: expect.stringMatching(
          /^digits\/active-version\.json: not valid JSON \([^\n]+\)$/,
        ),
      });
      expect(await gauge(t)).toBe('1');
      // Explicit versions are still served.
      expect((await predictRows(t.app, 'digits', rows, 2)).model_version).toBe(2);
    } finally {
      await t.close();
    }
  });
});
