/**
 * A repository whose files were made by someone else: symbolic links out of the repository are
 * refused (a version linking config.json to a system file is FAILED, and nothing of that file
 * reaches the public reason), reasons name files relative to the repository, and sizes are
 * checked before a file is read whole (a sparse 1.5 GB or 3 GiB model.safetensors with a small
 * header costs neither memory nor a message without the file's name). A FIFO where a file goes
 * is refused at once, never waited on; a weights header naming tensors the config does not
 * expect is refused before any data is read, and a config that is invalid before the weights
 * are opened.
 */
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { ModelRepository } from '../../src/repository/index.js';
import { JobRegistry } from '../../src/service/index.js';
import { ADMIN, predictRows } from '../helpers/admin.js';
import { digitsTestRows, makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';

/** Widths of the networks built (buildSequential spied through its module, passing through). */
const builtWidths = vi.hoisted(() => [] as number[][]);
vi.mock('../../src/checkpoint/build-model.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/checkpoint/build-model.js')>();
  return {
    ...actual,
    buildSequential: (...args: Parameters<typeof actual.buildSequential>) => {
      builtWidths.push(args[0].map((l) => ('num_features' in l ? Number(l.num_features) : 0)));
      return actual.buildSequential(...args);
    },
  };
});

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** Activates digits/2 and checks that predictions now come from it. */
async function activateVersion2(t: TestApp, rows: number[][]): Promise<void> {
  const activate = await t.app.inject({
    method: 'POST',
    url: '/v1/models/digits/versions/2:activate',
    headers: ADMIN,
  });
  expect(activate.statusCode, activate.body).toBe(200);
  expect((await predictRows(t.app, 'digits', rows)).model_version).toBe(2);
}

/** A repository with digits/1 and digits/2, a copy of it to be tampered with (1 stays active). */
function twoVersions(): { repository: string; v2: string } {
  const repository = makeRepository(['digits']);
  made.push(repository);
  const v2 = join(repository, 'digits', '2');
  cpSync(join(repository, 'digits', '1'), v2, { recursive: true });
  writeFileSync(join(repository, 'digits', 'active-version.json'), '{"version":1}');
  return { repository, v2 };
}

/** A directory outside the repository holding a copy of digits/1's files. */
function outside(): string {
  const dir = join(tmpdir(), `normserve-outside-${process.pid}-${made.length}`);
  made.push(dir);
  cpSync(bundledVersionDir('digits'), dir, { recursive: true });
  return dir;
}

interface Listing {
  active_version: number | null;
  versions: { version: number; state: string; reason?: string }[];
}

async function statusOf(repository: string): Promise<{ listing: Listing; raw: string }> {
  const t = await makeTestApp({ repository });
  try {
    const res = await t.app.inject({ url: '/v1/models/digits/versions' });
    const all = [
      res.body,
      (await t.app.inject({ url: '/v1/models' })).body,
      (await t.app.inject({ url: '/v1/models/digits' })).body,
    ].join('\n');
    return { listing: res.json<Listing>(), raw: all };
  } finally {
    await t.close();
  }
}

const version2 = (l: Listing) => l.versions.find((v) => v.version === 2)!;

describe('symbolic links', () => {
  it('config.json linking to a system file: FAILED, refused by name, nothing of the file shown', async () => {
    const { repository, v2 } = twoVersions();
    rmSync(join(v2, 'config.json'));
    symlinkSync('/etc/passwd', join(v2, 'config.json'));
    const { listing, raw } = await statusOf(repository);
    expect(version2(listing)).toMatchObject({
      state: 'FAILED',
      reason:
        'digits/2/config.json: a symbolic link to a place outside the model repository (refused)',
    });
    expect(listing.active_version).toBe(1);
    expect(raw).not.toContain('root:');
    expect(raw).not.toContain(repository);
    expect(raw).not.toContain('/etc/passwd');
  });

  it('weights linking out of the repository, even valid ones, do not load', async () => {
    const { repository, v2 } = twoVersions();
    const elsewhere = outside();
    rmSync(join(v2, 'model.safetensors'));
    symlinkSync(join(elsewhere, 'model.safetensors'), join(v2, 'model.safetensors'));
    const { listing, raw } = await statusOf(repository);
    expect(version2(listing)).toMatchObject({
      state: 'FAILED',
      reason: expect.stringMatching(
        /^digits\/2\/model\.safetensors: a symbolic link to a place outside/,
      ),
    });
    expect(raw).not.toContain(elsewhere);
  });

  it('a version directory linking out of the repository is not a version; a model directory neither', async () => {
    const { repository } = twoVersions();
    symlinkSync(outside(), join(repository, 'digits', '3'));
    const elsewhere = join(tmpdir(), `normserve-outside-model-${process.pid}`);
    made.push(elsewhere);
    mkdirSync(elsewhere, { recursive: true });
    cpSync(bundledVersionDir('digits'), join(elsewhere, '1'), { recursive: true });
    symlinkSync(elsewhere, join(repository, 'linked'));
    const t = await makeTestApp({ repository });
    try {
      const models = (await t.app.inject({ url: '/v1/models' })).json<{
        models: { name: string; versions: { version: number }[] }[];
      }>().models;
      expect(models.map((m) => m.name)).toEqual(['digits']);
      expect(models[0]!.versions.map((v) => v.version)).toEqual([1, 2]);
      // Not even by name (an admin call refreshes a model by name).
      expect(await t.registry.repository.hasModel('linked')).toBe(false);
    } finally {
      await t.close();
    }
  });

  it('links inside the repository are followed: version 2 sharing version 1’s weights loads', async () => {
    const { repository, v2 } = twoVersions();
    rmSync(join(v2, 'model.safetensors'));
    symlinkSync('../1/model.safetensors', join(v2, 'model.safetensors'));
    const { listing } = await statusOf(repository);
    expect(version2(listing)).toMatchObject({ state: 'AVAILABLE' });
  });

  it('a repository that is itself a link works', async () => {
    const { repository } = twoVersions();
    const link = join(tmpdir(), `normserve-repo-link-${process.pid}`);
    made.push(link);
    symlinkSync(repository, link);
    const { listing } = await statusOf(link);
    expect(listing.versions.map((v) => v.state)).toEqual(['AVAILABLE', 'AVAILABLE']);
  });
});

describe('sizes before reading', () => {
  it('a sparse 1.5 GB model.safetensors with a small header: FAILED from its header, memory untouched', async () => {
    const { repository, v2 } = twoVersions();
    truncateSync(join(v2, 'model.safetensors'), 1_500_000_000);
    const before = process.memoryUsage().rss;
    const { listing } = await statusOf(repository);
    const grown = process.memoryUsage().rss - before;
    expect(version2(listing)).toMatchObject({
      state: 'FAILED',
      reason: expect.stringMatching(
        /^digits\/2\/model\.safetensors: \d+ trailing bytes after the last tensor/,
      ),
    });
    // Reading it whole took 1.5 GB; the header and a few stats are all that is read now.
    expect(grown).toBeLessThan(300_000_000);
  });

  it('over 2 GiB (sparse 3 GiB): the message names the file', async () => {
    const { repository, v2 } = twoVersions();
    truncateSync(join(v2, 'model.safetensors'), 3 * 1024 ** 3);
    const { listing } = await statusOf(repository);
    expect(version2(listing).reason).toMatch(/^digits\/2\/model\.safetensors: /);
  });

  it('a config.json larger than any config (sparse 100 MB) is refused by its size, unread', async () => {
    const { repository, v2 } = twoVersions();
    truncateSync(join(v2, 'config.json'), 100_000_000);
    const { listing } = await statusOf(repository);
    expect(version2(listing)).toMatchObject({
      state: 'FAILED',
      reason:
        'digits/2/config.json: 100000000 bytes, more than the 16777216 a file of this kind may have',
    });
  });

  it('a directory where a file should be: named, relative', async () => {
    const { repository, v2 } = twoVersions();
    rmSync(join(v2, 'config.json'));
    mkdirSync(join(v2, 'config.json'));
    const { listing } = await statusOf(repository);
    expect(version2(listing).reason).toBe('digits/2/config.json: not a regular file');
    expect(readFileSync(join(repository, 'digits', '1', 'config.json')).length).toBeGreaterThan(0);
  });
});

/** A FIFO (named pipe) at `path`: opening it for reading would wait for a writer. */
const mkfifo = (path: string) => execFileSync('mkfifo', [path]);

describe.skipIf(process.platform === 'win32')('FIFOs where files go: refused at once', () => {
  const rows = digitsTestRows().x.slice(0, 4);

  it('model.safetensors a FIFO: that version FAILED naming it, the other serves, polling goes on, close completes', async () => {
    const { repository, v2 } = twoVersions();
    rmSync(join(v2, 'model.safetensors'));
    mkfifo(join(v2, 'model.safetensors'));
    const t = await makeTestApp({ repository });
    try {
      const listing = (await t.app.inject({ url: '/v1/models/digits/versions' })).json<Listing>();
      expect(version2(listing)).toMatchObject({
        state: 'FAILED',
        reason: 'digits/2/model.safetensors: not a regular file',
      });
      expect((await predictRows(t.app, 'digits', rows)).model_version).toBe(1);
      // The next poll is not stuck behind the FIFO: a version added now appears.
      cpSync(join(repository, 'digits', '1'), join(repository, 'digits', '3'), { recursive: true });
      await t.registry.refresh();
      const after = (await t.app.inject({ url: '/v1/models/digits/versions' })).json<Listing>();
      expect(after.versions.map((v) => [v.version, v.state])).toEqual([
        [1, 'AVAILABLE'],
        [2, 'FAILED'],
        [3, 'AVAILABLE'],
      ]);
    } finally {
      await t.close();
    }
  });

  it('config.json a FIFO: FAILED naming it', async () => {
    const { repository, v2 } = twoVersions();
    rmSync(join(v2, 'config.json'));
    mkfifo(join(v2, 'config.json'));
    const { listing } = await statusOf(repository);
    expect(version2(listing).reason).toBe('digits/2/config.json: not a regular file');
  });

  it('active-version.json turned into a FIFO while serving: reported, the last active version serves, :activate answers and repairs it', async () => {
    const { repository } = twoVersions();
    const t = await makeTestApp({ repository });
    try {
      const record = join(repository, 'digits', 'active-version.json');
      rmSync(record);
      mkfifo(record);
      await t.registry.refresh();
      const status = (await t.app.inject({ url: '/v1/models/digits/versions' })).json<
        Listing & { active_record_error?: string }
      >();
      expect(status.active_record_error).toBe('digits/active-version.json: not a regular file');
      expect((await predictRows(t.app, 'digits', rows)).model_version).toBe(1);
      await activateVersion2(t, rows);
      expect(statSync(record).isFile()).toBe(true);
    } finally {
      await t.close();
    }
  });

  it("a FIFO where the active record's lock goes is no lock: :activate breaks it and answers", async () => {
    const { repository } = twoVersions();
    mkfifo(join(repository, 'digits', '.active-version.lock'));
    const t = await makeTestApp({ repository });
    try {
      await activateVersion2(t, rows);
    } finally {
      await t.close();
    }
  });

  it('a FIFO named as a job record: not a record; the sweep and a lookup return', async () => {
    const { repository } = twoVersions();
    const jobs = new JobRegistry({ dir: join(repository, '.jobs') });
    mkdirSync(join(repository, '.jobs'));
    const id = '0b5d0c6e-4c2a-4f7e-9a53-2f3c1d9e8a71';
    mkfifo(join(repository, '.jobs', `${id}.json`));
    await jobs.sweep();
    expect(await jobs.get(id)).toBeUndefined();
    jobs.close();
  });
});

// Reads are told apart by their descriptor's link in /proc (Linux, where CI and the container run).
describe.skipIf(!existsSync('/proc/self/fd'))(
  'weights checked against the config before their data is read',
  () => {
    /**
     * Bytes asked of every read from now on of each file in `dir` (FileHandle.prototype.read), by
     * the file's name. A read's file is the handle's descriptor's link in /proc/self/fd as the
     * read starts: reads of other files by anything else alive in this worker (an earlier test's
     * app polling its repository) are not counted.
     */
    async function countReads(dir: string): Promise<{ of: (file: string) => number }> {
      const handle = await open(join('models', 'digits', '1', 'config.json'));
      const proto = Object.getPrototypeOf(handle) as { read: (...args: unknown[]) => unknown };
      await handle.close();
      const inside = realpathSync(dir) + sep;
      const read = proto.read;
      const asked = new Map<string, number>();
      vi.spyOn(proto, 'read').mockImplementation(function (this: { fd: number }, ...args) {
        const path = readlinkSync(`/proc/self/fd/${this.fd}`);
        if (path.startsWith(inside)) {
          const file = path.slice(inside.length);
          asked.set(
            file,
            (asked.get(file) ?? 0) + (typeof args[2] === 'number' ? args[2] : Number.NaN),
          );
        }
        return read.apply(this, args);
      });
      return { of: (file) => asked.get(file) ?? 0 };
    }
    /**
     * What a refused version's load reads: config.json whole, `weights` bytes of the weights, and
     * metrics.json whole or not at all — it is read beside the weights (Promise.all), and whether
     * its read has started when the weights are refused is the threads' timing (a count of all
     * three failed now and then).
     */
    function expectRead(
      reads: { of: (file: string) => number },
      v2: string,
      weights: number,
    ): void {
      expect(reads.of('config.json')).toBe(statSync(join(v2, 'config.json')).size);
      expect(reads.of('model.safetensors')).toBe(weights);
      expect([0, statSync(join(v2, 'metrics.json')).size]).toContain(reads.of('metrics.json'));
    }
    afterEach(() => {
      vi.restoreAllMocks();
    });

    /** digits/2 with v1's tensors plus `extra` bytes of an F32 tensor "evil", sparse on disk. */
    function withEvilTensor(v2: string, extra: number): number {
      const original = readFileSync(join(v2, 'model.safetensors'));
      const headerLength = Number(original.readBigUInt64LE(0));
      const header = JSON.parse(original.subarray(8, 8 + headerLength).toString('utf8'));
      const body = original.subarray(8 + headerLength);
      header.evil = {
        dtype: 'F32',
        shape: [extra / 4],
        data_offsets: [body.length, body.length + extra],
      };
      let text = JSON.stringify(header);
      text += ' '.repeat((8 - (text.length % 8)) % 8);
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(text.length));
      const path = join(v2, 'model.safetensors');
      writeFileSync(path, Buffer.concat([prefix, Buffer.from(text), body]));
      truncateSync(path, 8 + text.length + body.length + extra);
      return 8 + text.length;
    }

    it('an extra 3 GiB tensor (sparse): refused from its header entry, reading only the header', async () => {
      const { repository, v2 } = twoVersions();
      const headerEnd = withEvilTensor(v2, 3 * 1024 ** 3);
      const { listing } = await statusOf(repository);
      expect(version2(listing)).toMatchObject({
        state: 'FAILED',
        reason: 'digits/2/model.safetensors: unexpected tensor "evil"',
      });
      const reads = await countReads(v2);
      await expect(new ModelRepository(repository).loadVersion('digits', 2)).rejects.toMatchObject({
        code: 'CHECKPOINT_MISMATCH',
        message: 'digits/2/model.safetensors: unexpected tensor "evil"',
      });
      // The weights' length prefix and header: not a byte more.
      expectRead(reads, v2, 8 + headerEnd);
    });

    it('a 16,000,000-feature config beside a tiny file: FAILED from the header, the network never built', async () => {
      // Review 9: the network was built before the header was compared (7.8 s, 3.0 GB peak RSS).
      const { repository, v2 } = twoVersions();
      writeFileSync(
        join(v2, 'config.json'),
        JSON.stringify({
          format: 'normserve.model/v1',
          name: 'digits',
          task: 'regression',
          input_shape: [16_000_000],
          layers: [{ type: 'batchnorm1d', num_features: 16_000_000 }],
        }),
      );
      // One F32 tensor "0.weight" of shape [1]: 8 + 72 header + 4 data bytes.
      const header = '{"0.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'.padEnd(72);
      const file = Buffer.alloc(8 + header.length + 4);
      file.writeBigUInt64LE(BigInt(header.length));
      file.write(header, 8);
      writeFileSync(join(v2, 'model.safetensors'), file);
      builtWidths.length = 0;
      const reason =
        'digits/2/model.safetensors: tensor "0.weight" has shape [1], expected [16000000]';
      const { listing } = await statusOf(repository);
      expect(version2(listing)).toMatchObject({ state: 'FAILED', reason });
      await expect(new ModelRepository(repository).loadVersion('digits', 2)).rejects.toMatchObject({
        code: 'CHECKPOINT_MISMATCH',
        message: reason,
      });
      expect(builtWidths.length).toBeGreaterThan(0); // digits/1 was built: the spy sees builds
      expect(builtWidths.flat()).not.toContain(16_000_000);
    });

    it('a header length past 8 MiB (a sparse 95 MB header of metadata): refused from its prefix', async () => {
      const { repository, v2 } = twoVersions();
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(95_000_000n);
      writeFileSync(join(v2, 'model.safetensors'), prefix);
      truncateSync(join(v2, 'model.safetensors'), 8 + 95_000_000);
      const reads = await countReads(v2);
      await expect(new ModelRepository(repository).loadVersion('digits', 2)).rejects.toMatchObject({
        code: 'SAFETENSORS_INVALID',
        message:
          'digits/2/model.safetensors: header length 95000000 exceeds the limit of 8388608 bytes',
      });
      expectRead(reads, v2, 8);
    });

    it('a config that is invalid: refused without opening the weights (even a 3 GiB sparse file)', async () => {
      const { repository, v2 } = twoVersions();
      withEvilTensor(v2, 3 * 1024 ** 3);
      const config = JSON.parse(readFileSync(join(v2, 'config.json'), 'utf8'));
      config.layers[2].type = 'softplus';
      writeFileSync(join(v2, 'config.json'), JSON.stringify(config));
      const reads = await countReads(v2);
      await expect(new ModelRepository(repository).loadVersion('digits', 2)).rejects.toMatchObject({
        code: 'MODEL_CONFIG_INVALID',
        message: expect.stringMatching(
          /^digits\/2\/config\.json: layers\[2\]\.type: unknown layer type "softplus"/,
        ),
      });
      expect(reads.of('config.json')).toBe(statSync(join(v2, 'config.json')).size);
      expect([reads.of('model.safetensors'), reads.of('metrics.json')]).toEqual([0, 0]);
    });

    it('a valid version reads its files once: config, metrics, prefix, header, data', async () => {
      const { repository, v2 } = twoVersions();
      const reads = await countReads(v2);
      await new ModelRepository(repository).loadVersion('digits', 2);
      const sizes = ['config.json', 'metrics.json', 'model.safetensors'].map(
        (f) => statSync(join(v2, f)).size,
      );
      // The weights' first 8 bytes are read twice (alone, then with the header).
      expect(['config.json', 'metrics.json', 'model.safetensors'].map(reads.of)).toEqual([
        sizes[0],
        sizes[1],
        sizes[2]! + 8,
      ]);
    });
  },
);

describe('a config whose blocks nest too deep', () => {
  it('3,000 nested residual blocks: FAILED as config-invalid naming the file and layer, not a stack overflow; digits serves', async () => {
    const { repository } = twoVersions();
    const dir = join(repository, 'deep', '1');
    mkdirSync(dir, { recursive: true });
    const depth = 3000;
    writeFileSync(
      join(dir, 'config.json'),
      `{"format":"normserve.model/v1","name":"deep","task":"regression","input_shape":[1],"layers":[${'{"type":"residual","layers":['.repeat(depth)}{"type":"relu"}${']}'.repeat(depth)}]}`,
    );
    // A residual block of relus holds no tensors: an empty safetensors file (header "{}" + padding).
    const header = Buffer.from('{}      ');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([prefix, header]));
    const t = await makeTestApp({ repository });
    try {
      const deep = (await t.app.inject({ url: '/v1/models/deep/versions' })).json<Listing>();
      expect(deep.versions[0]).toMatchObject({
        state: 'FAILED',
        reason: `deep/1/config.json: layers[0]${'.layers[0]'.repeat(65)}: blocks nested more than 64 deep (the limit; real networks nest one or two)`,
      });
      expect(
        (await predictRows(t.app, 'digits', digitsTestRows().x.slice(0, 2))).model_version,
      ).toBe(1);
    } finally {
      await t.close();
    }
  });
});

describe('a config of too many layers', () => {
  it('200,000 relus, flat or in one block: FAILED as config-invalid naming the file, not a stack overflow; 10,000 serve', async () => {
    const { repository } = twoVersions();
    const relus = (n: number) => Array(n).fill('{"type":"relu"}').join(',');
    const configs = {
      flat: relus(200_000),
      block: `{"type":"residual","layers":[${relus(200_000)}]}`,
      limit: relus(10_000),
    };
    // Relus and residual blocks hold no tensors: an empty safetensors file (header "{}" + padding).
    const header = Buffer.from('{}      ');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    for (const [name, layers] of Object.entries(configs)) {
      const dir = join(repository, name, '1');
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, 'config.json'),
        `{"format":"normserve.model/v1","name":"${name}","task":"regression","input_shape":[1],"layers":[${layers}]}`,
      );
      writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([prefix, header]));
    }
    const t = await makeTestApp({ repository });
    try {
      const versionOf = async (name: string) =>
        (await t.app.inject({ url: `/v1/models/${name}/versions` })).json<Listing>().versions[0];
      expect(await versionOf('flat')).toMatchObject({
        state: 'FAILED',
        reason:
          'flat/1/config.json: layers: 200000 layers, nested ones counted; at most 10000 are allowed (ResNet-152 has about 500)',
      });
      expect(await versionOf('block')).toMatchObject({
        state: 'FAILED',
        reason: expect.stringMatching(/^block\/1\/config\.json: layers: 200001 layers, nested/),
      });
      expect(await versionOf('limit')).toMatchObject({ state: 'AVAILABLE' });
      expect((await predictRows(t.app, 'limit', [[-2]])).model_version).toBe(1);
    } finally {
      await t.close();
    }
  });
});
