/**
 * The recalibrate CLI as an operator runs it: `node --import tsx src/cli/recalibrate.ts --model
 * <repo>/digits --data night.csv`, on the night CSV that tools/night-shift.ts writes. It publishes
 * the next version (activated unless --no-activate) with the server's code, so its statistics are
 * the server's byte for byte; bad data exits non-zero with ONE stderr line and writes nothing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  labelAccuracy,
  ndjsonBody,
  predictRows,
  rowsSha256,
  versionConfig,
  versionTensors,
} from '../helpers/admin.js';
import { makeRepository, makeTestApp } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { type Entry, nodeArgs } from '../helpers/entries.js';
import { listTree, makeTempDir, removeTempDirs, writeTempFile } from '../helpers/temp-files.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const test = digitsTestRows();
const night = nightShift(test.x);

interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(script: Entry, args: readonly string[]): CliResult {
  const result = spawnSync(process.execPath, [...nodeArgs(script), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const recalibrateCli = (args: readonly string[]) => run('src/cli/recalibrate.ts', args);

interface Outcome {
  version: number;
  parent_version: number;
  mode: string;
  samples: number;
  activated: boolean;
  data_sha256: string;
  batches?: number;
}

const inputs = makeTempDir('recalibrate-cli');
let repository = '';
let nightCsv = '';

beforeAll(() => {
  repository = makeRepository(['digits']);
  nightCsv = join(inputs, 'night.csv');
  const tool = run('tools/night-shift.ts', ['--out', nightCsv]);
  expect(tool.status, tool.stderr).toBe(0);
  expect(tool.stdout).toContain('360 rows');
});
afterAll(() => {
  rmSync(repository, { recursive: true, force: true });
  removeTempDirs();
});

const activeRecord = () =>
  JSON.parse(readFileSync(join(repository, 'digits', 'active-version.json'), 'utf8')) as {
    version: number;
  };

describe('recalibrate CLI', () => {
  it('tools/night-shift.ts writes the night rows of the issue (header, 360 rows, labels kept)', () => {
    const lines = readFileSync(nightCsv, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(361);
    expect(lines[0]).toBe(
      readFileSync(join(ROOT, 'data/digits/digits.csv'), 'utf8').split('\n')[0],
    );
    const cells = lines.slice(1).map((l) => l.split(',').map(Number));
    expect(cells.map((c) => c.slice(0, 64))).toEqual(night);
    expect(cells.map((c) => c[64])).toEqual(test.y);
  });

  it('--model <repo>/digits --data night.csv publishes version 2 and activates it', async () => {
    const res = recalibrateCli(['--model', join(repository, 'digits'), '--data', nightCsv]);
    expect(res.status, res.stderr).toBe(0);
    const outcome = JSON.parse(res.stdout) as Outcome;
    expect(outcome).toMatchObject({
      version: 2,
      parent_version: 1,
      mode: 'exact',
      samples: 360,
      activated: true,
      data_sha256: rowsSha256(night),
    });
    expect(res.stderr.trim().split('\n')).toEqual([
      `published ${join(repository, 'digits')}/2 (parent 1, exact, 360 samples), now active`,
    ]);
    for (const f of ['config.json', 'model.safetensors', 'metrics.json'])
      expect(existsSync(join(repository, 'digits', '2', f)), f).toBe(true);
    expect(activeRecord().version).toBe(2);
    expect(versionConfig(repository, 'digits', 2).provenance).toMatchObject({
      parent_version: 1,
      mode: 'exact',
      samples: 360,
      data_sha256: rowsSha256(night),
    });
    expect(listTree(repository).filter((p) => p.includes('.tmp-') || p.endsWith('.lock'))).toEqual(
      [],
    );

    // A server started on the repository serves it.
    const t = await makeTestApp({ repository });
    try {
      const served = await predictRows(t.app, 'digits', night);
      expect(served.model_version).toBe(2);
      const clean = await predictRows(t.app, 'digits', test.x, 1);
      expect(labelAccuracy(served.labels, test.y)).toBeGreaterThanOrEqual(
        labelAccuracy(clean.labels, test.y) - 0.01,
      );
    } finally {
      await t.close();
    }
    // The server recalibrating the same rows (from its own copy of version 1) writes the same
    // tensors byte for byte: one code path.
    const server = await makeTestApp();
    try {
      const http = await server.app.inject({
        method: 'POST',
        url: '/v1/models/digits:recalibrate',
        headers: { ...ADMIN, 'content-type': 'application/x-ndjson' },
        payload: ndjsonBody(night),
      });
      expect(http.statusCode, http.body).toBe(201);
      expect(http.json<Outcome>()).toMatchObject({ version: 2, data_sha256: rowsSha256(night) });
      const cli = versionTensors(repository, 'digits', 2);
      const viaHttp = versionTensors(server.repository, 'digits', 2);
      expect([...viaHttp.keys()]).toEqual([...cli.keys()]);
      for (const [name, tensor] of cli)
        expect(Buffer.from(viaHttp.get(name)!.bytes).equals(Buffer.from(tensor.bytes)), name).toBe(
          true,
        );
    } finally {
      await server.close();
    }
  });

  it('--no-activate publishes without switching (NDJSON data, running mode, note)', () => {
    const data = writeTempFile(inputs, 'night.ndjson', ndjsonBody(night));
    const res = recalibrateCli([
      '--model',
      join(repository, 'digits'),
      '--data',
      data,
      '--mode',
      'running',
      '--batch-size',
      '64',
      '--note',
      'not yet',
      '--no-activate',
    ]);
    expect(res.status, res.stderr).toBe(0);
    const outcome = JSON.parse(res.stdout) as Outcome;
    expect(outcome).toMatchObject({
      version: 3,
      parent_version: 2,
      mode: 'running',
      batches: 6,
      activated: false,
      data_sha256: rowsSha256(night),
    });
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toContain('not activated');
    expect(activeRecord().version).toBe(2);
    expect(versionConfig(repository, 'digits', 3).provenance).toMatchObject({
      note: 'not yet',
      batch_size: 64,
    });
  });

  // More rows than one chunk (DEFAULT_CHUNK_ROWS, 4,096) and a short last one: the CLI reads its
  // file as the route reads an upload, and publishes the tensors the route publishes, byte for
  // byte, from a CSV and from NDJSON, in a mode that stores the rows and in one that does not.
  const many = Array.from({ length: 25 }, () => night).flat(); // 9,000 rows
  const header = Array.from({ length: 64 }, (_, i) => `p${i}`).join(',');
  const manyCsv = `${header}\n${many.map((r) => r.join(',')).join('\n')}\n`;
  for (const mode of ['exact', 'running'] as const) {
    for (const kind of ['csv', 'ndjson'] as const) {
      it(`${many.length} rows of ${kind}, mode ${mode}: the HTTP upload's tensors, byte for byte`, async () => {
        const copy = makeRepository(['digits']);
        const server = await makeTestApp();
        try {
          const data = writeTempFile(
            inputs,
            `many-${mode}.${kind}`,
            kind === 'csv' ? manyCsv : ndjsonBody(many),
          );
          const options = mode === 'running' ? ['--mode', 'running', '--batch-size', '100'] : [];
          const res = recalibrateCli(['--model', join(copy, 'digits'), '--data', data, ...options]);
          expect(res.status, res.stderr).toBe(0);
          const outcome = JSON.parse(res.stdout) as Outcome;
          expect(outcome).toMatchObject({ version: 2, samples: 9000, mode });
          const http = await server.app.inject({
            method: 'POST',
            url: `/v1/models/digits:recalibrate?mode=${mode}${mode === 'running' ? '&batch_size=100' : ''}`,
            headers: {
              ...ADMIN,
              'content-type': kind === 'csv' ? 'text/csv' : 'application/x-ndjson',
            },
            payload: kind === 'csv' ? manyCsv : ndjsonBody(many),
          });
          expect(http.statusCode, http.body).toBe(201);
          expect(http.json<Outcome>().data_sha256).toBe(outcome.data_sha256);
          const cli = versionTensors(copy, 'digits', 2);
          const viaHttp = versionTensors(server.repository, 'digits', 2);
          expect([...viaHttp.keys()]).toEqual([...cli.keys()]);
          for (const [name, tensor] of cli)
            expect(
              Buffer.from(viaHttp.get(name)!.bytes).equals(Buffer.from(tensor.bytes)),
              name,
            ).toBe(true);
        } finally {
          await server.close();
          rmSync(copy, { recursive: true, force: true });
        }
      });
    }
  }

  const bad: { what: string; data: () => string; expected: (string | RegExp)[] }[] = [
    {
      what: 'a missing data file',
      data: () => join(inputs, 'missing.csv'),
      expected: ['cannot read', join(inputs, 'missing.csv'), 'no such file'],
    },
    {
      what: 'a non-numeric cell',
      data: () => {
        const lines = readFileSync(nightCsv, 'utf8').split('\n');
        const cells = lines[3]!.split(',');
        cells[5] = 'bright';
        lines[3] = cells.join(',');
        return writeTempFile(inputs, 'non-numeric.csv', lines.join('\n'));
      },
      expected: ['line 4', 'p5', '"bright"', 'not a finite number'],
    },
    {
      what: 'rows of the wrong width',
      data: () => writeTempFile(inputs, 'narrow.csv', 'a,b,label\n1,2,0\n3,4,1\n'),
      expected: ['narrow.csv: 2 feature columns; model "digits" takes 64 (no column named "p0", '],
    },
    {
      what: 'a single row',
      data: () => {
        const lines = readFileSync(nightCsv, 'utf8').split('\n');
        return writeTempFile(inputs, 'one.csv', `${lines[0]}\n${lines[1]}\n`);
      },
      expected: [
        'need at least 2 samples: one sample gives BatchNorm 1 (BatchNorm1d, input [128]) one value per channel, which has no variance',
      ],
    },
    {
      what: 'an NDJSON line that is not a row of the model’s width',
      data: () => writeTempFile(inputs, 'bad.ndjson', `${JSON.stringify(night[0])}\n["x"]\n`),
      expected: ['bad.ndjson: line 2: expected 64 values, got 1'],
    },
    {
      what: 'an NDJSON value beyond float32, named by line and index as the HTTP upload names it',
      data: () =>
        writeTempFile(
          inputs,
          'huge.ndjson',
          `${JSON.stringify(night[0])}\n${JSON.stringify(night[1]!.map((v, j) => (j === 5 ? 1e39 : v)))}\n`,
        ),
      expected: [/huge\.ndjson: line 2\[5\]: outside the float32 range/],
    },
  ];

  for (const { what, data, expected } of bad) {
    it(`${what} → exit 1, one clear stderr line, nothing written`, () => {
      const before = listTree(repository);
      const res = recalibrateCli(['--model', join(repository, 'digits'), '--data', data()]);
      expect(res.status).toBe(1);
      expect(res.stdout).toBe('');
      const lines = res.stderr.trimEnd().split('\n');
      expect(lines, res.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^recalibrate: /);
      expect(lines[0]).not.toMatch(/internal error| {4}at /);
      for (const e of expected) {
        if (typeof e === 'string') expect(lines[0]).toContain(e);
        else expect(lines[0]).toMatch(e);
      }
      expect(listTree(repository)).toEqual(before);
    });
  }

  it('training.feature_names that is not a list of names is ignored (the CSV columns in order), not a crash', () => {
    const copy = makeRepository(['digits']);
    try {
      const configPath = join(copy, 'digits', '1', 'config.json');
      const config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
      config.training = { ...(config.training as object), feature_names: 'p0,p1' };
      writeFileSync(configPath, JSON.stringify(config));
      const res = recalibrateCli(['--model', join(copy, 'digits'), '--data', nightCsv]);
      expect(res.status, res.stderr).toBe(0);
      expect((JSON.parse(res.stdout) as Outcome).data_sha256).toBe(rowsSha256(night));
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  const refused: {
    what: string;
    args: string[];
    prepare?: (dir: string) => void;
    expected: RegExp;
  }[] = [
    {
      what: '--batch-size beyond its bound',
      args: ['--mode', 'running', '--batch-size', '1000000000'],
      expected: /^recalibrate: --batch-size: expected an integer from 1 to 65536, got 1000000000$/,
    },
    {
      // Decimal digits, as HTTP's batch_size (integerText): Number() read "0x10" as 16.
      what: '--batch-size in hexadecimal',
      args: ['--mode', 'running', '--batch-size', '0x10'],
      expected: /^recalibrate: --batch-size: expected an integer from 1 to 65536, got "0x10"$/,
    },
    {
      what: '--batch-size 1 on a BatchNorm1d network (one value per channel: PyTorch raises)',
      args: ['--mode', 'running', '--batch-size', '1'],
      expected:
        /^recalibrate: batch size 1: BatchNorm 1 \(BatchNorm1d\) would get input \[1, 128\] in a batch of 1 row: one value per channel, which a BatchNorm cannot normalize in training \(PyTorch: "Expected more than 1 value per channel when training"\); use a batch size of at least 2$/,
    },
    {
      what: '--prior-strength beyond its bound',
      args: ['--mode', 'prior', '--prior-strength', '1e300'],
      expected:
        /^recalibrate: --prior-strength: expected a number from 0 to 1000000000000, got 1e\+300$/,
    },
    {
      // Decimal, as HTTP's prior_strength (decimalText): Number() read "0x10" as 16 (review51).
      what: '--prior-strength in hexadecimal',
      args: ['--mode', 'prior', '--prior-strength', '0x10'],
      expected:
        /^recalibrate: --prior-strength: expected a number from 0 to 1000000000000, got "0x10"$/,
    },
    {
      what: '--prior-strength that is no number',
      args: ['--mode', 'prior', '--prior-strength', 'strong'],
      expected:
        /^recalibrate: --prior-strength: expected a number from 0 to 1000000000000, got "strong"$/,
    },
    // A flag of another mode than the one chosen was read by nothing: refused, naming both flags.
    {
      what: '--batch-size without --mode running (the default mode is exact)',
      args: ['--batch-size', '8'],
      expected:
        /^recalibrate: --batch-size needs --mode running \(the mode is exact, the default\)$/,
    },
    {
      what: '--batch-size with --mode prior',
      args: ['--mode', 'prior', '--batch-size', '8'],
      expected: /^recalibrate: --batch-size needs --mode running \(the mode is prior\)$/,
    },
    {
      what: '--prior-strength without --mode prior',
      args: ['--prior-strength', '32'],
      expected:
        /^recalibrate: --prior-strength needs --mode prior \(the mode is exact, the default\)$/,
    },
    {
      what: '--prior-strength with --mode running',
      args: ['--mode', 'running', '--batch-size', '64', '--prior-strength', '32'],
      expected: /^recalibrate: --prior-strength needs --mode prior \(the mode is running\)$/,
    },
    {
      // float32 rows (the HTTP upload's form): named as such, not read as a CSV of bytes.
      what: 'a .f32 file of float32 rows',
      args: ['--data', join(inputs, 'night.f32')],
      prepare: () =>
        writeFileSync(
          join(inputs, 'night.f32'),
          new Uint8Array(Float32Array.from(nightShift(digitsTestRows().x).flat()).buffer),
        ),
      expected:
        /\/night\.f32: float32 \(by its extension \.f32\): recalibrate reads CSV \(a header row\) or NDJSON \(one array per line, \.ndjson or \.jsonl\); float32 rows are read by the HTTP upload/,
    },
    {
      // A JSON file was read as a CSV: `header names column "0" twice`.
      what: 'a .json file of rows',
      args: ['--data', join(inputs, 'rows.json')],
      prepare: () =>
        writeFileSync(
          join(inputs, 'rows.json'),
          JSON.stringify([
            [0, 0],
            [1, 1],
          ]),
        ),
      expected:
        /\/rows\.json: JSON \(by its extension \.json\): recalibrate reads CSV \(a header row\) or NDJSON \(one array per line, \.ndjson or \.jsonl\); a JSON body is read by the HTTP route \(POST …:recalibrate\)$/,
    },
    {
      what: 'an active-version.json that is not JSON',
      args: [],
      prepare: (dir) => writeFileSync(join(dir, 'active-version.json'), 'garbage'),
      expected: /digits\/active-version\.json: not valid JSON/,
    },
  ];
  for (const { what, args, prepare, expected } of refused) {
    it(`${what} → exit 1, one line, nothing written`, () => {
      const copy = makeRepository(['digits']);
      try {
        prepare?.(join(copy, 'digits'));
        const before = listTree(copy);
        const res = recalibrateCli(['--model', join(copy, 'digits'), '--data', nightCsv, ...args]);
        expect(res.status, res.stderr).toBe(1);
        const lines = res.stderr.trimEnd().split('\n');
        expect(lines, res.stderr).toHaveLength(1);
        expect(lines[0]).toMatch(/^recalibrate: /);
        expect(lines[0]).not.toMatch(/internal error/);
        expect(lines[0]).toMatch(expected);
        expect(listTree(copy)).toEqual(before);
      } finally {
        rmSync(copy, { recursive: true, force: true });
      }
    });
  }

  it('a model directory without versions → exit 1, one line naming it', () => {
    const res = recalibrateCli(['--model', join(repository, 'nothing'), '--data', nightCsv]);
    expect(res.status).toBe(1);
    expect(res.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(res.stderr).toContain('nothing');
    expect(existsSync(join(repository, 'nothing'))).toBe(false);
  });
});
