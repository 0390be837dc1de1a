/**
 * POST /v1/models/{name}:recalibrate with `Content-Type: text/csv`, as `npm run recalibrate --
 * --data night.csv` reads a CSV: the same rows as a CSV, JSON or NDJSON give the same new version
 * bit for bit; the header picks the columns by the model's feature names (any order) or, without
 * them, every column but the label's; each malformed CSV is a 4xx problem naming its line.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOAT32_RANGE_MESSAGE } from '../../src/service/index.js';
import {
  ADMIN,
  expectProblem,
  ndjsonBody,
  rowsSha256,
  versionConfig,
  versionTensors,
} from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';

const test = digitsTestRows();
const night = nightShift(test.x);
const RECALIBRATE = '/v1/models/digits:recalibrate';
const UNLIMITED = { ADMIN_RATE_LIMIT_PER_MINUTE: '100000' };
const CSV = { ...ADMIN, 'content-type': 'text/csv' };
const NDJSON = { ...ADMIN, 'content-type': 'application/x-ndjson' };
/** The digits model's recorded feature names, p0 … p63 (data/digits/README.md). */
const PIXELS = Array.from({ length: 64 }, (_, i) => `p${i}`);

/** A CSV of the header and rows as given (cells as text), lines ended by `eol`. */
const csvText = (header: readonly string[], rows: readonly (readonly unknown[])[], eol = '\n') =>
  [header, ...rows].map((r) => r.join(',')).join(eol) + eol;

/** The night rows as data/digits.csv lays them out: p0 … p63, then the label. */
const nightCsv = (rows = night) =>
  csvText(
    [...PIXELS, 'label'],
    rows.map((r, i) => [...r, test.y[i]]),
  );

async function recalibrate(
  t: TestApp,
  payload: string | Buffer,
  options: { url?: string; headers?: Record<string, string> } = {},
) {
  return t.app.inject({
    method: 'POST',
    url: options.url ?? RECALIBRATE,
    headers: options.headers ?? CSV,
    payload,
  });
}

/** Every tensor of version `v` equals version `reference`'s, byte for byte. */
function expectSameTensors(t: TestApp, v: number, reference: number) {
  const expected = versionTensors(t.repository, 'digits', reference);
  const got = versionTensors(t.repository, 'digits', v);
  expect([...got.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [name, tensor] of expected) {
    expect(Buffer.from(got.get(name)!.bytes).equals(Buffer.from(tensor.bytes)), name).toBe(true);
  }
}

describe('text/csv uploads give what JSON and NDJSON give', () => {
  let t: TestApp;
  let reference = 0;
  let referenceSha = '';
  beforeAll(async () => {
    t = await makeTestApp({ env: UNLIMITED });
    const json = await recalibrate(t, JSON.stringify({ instances: night, activate: false }), {
      headers: { ...ADMIN, 'content-type': 'application/json' },
    });
    expect(json.statusCode, json.body).toBe(201);
    reference = json.json<{ version: number }>().version;
    referenceSha = json.json<{ data_sha256: string }>().data_sha256;
  });
  afterAll(async () => {
    await t.close();
  });

  /** Publishes `payload` (not activated) and checks it equals the JSON upload's version. */
  async function expectSameVersion(
    payload: string | Buffer,
    query = '',
    headers: Record<string, string> = CSV,
  ) {
    const res = await recalibrate(t, payload, {
      url: `${RECALIBRATE}?activate=false${query}`,
      headers,
    });
    expect(res.statusCode, res.body).toBe(201);
    const outcome = res.json<{ version: number; samples: number; data_sha256: string }>();
    expect(outcome).toMatchObject({ samples: night.length, data_sha256: referenceSha });
    expect(res.headers.location).toBe(`/v1/models/digits/versions/${outcome.version}`);
    expectSameTensors(t, outcome.version, reference);
    return outcome.version;
  }

  it('data/digits.csv layout (p0 … p63, label): bit for bit the JSON and NDJSON versions', async () => {
    expect(referenceSha).toBe(rowsSha256(night));
    await expectSameVersion(ndjsonBody(night), '', NDJSON);
    const v = await expectSameVersion(nightCsv(), '&note=csv');
    expect(versionConfig(t.repository, 'digits', v).provenance).toMatchObject({
      note: 'csv',
      samples: night.length,
    });
    // The media type's parameters as curl and browsers send them; a gzip-compressed body.
    await expectSameVersion(nightCsv(), '', { ...CSV, 'content-type': 'text/csv; charset=UTF-8' });
    await expectSameVersion(nightCsv(), '', {
      ...CSV,
      'content-type': 'text/csv;charset="utf-8";header=present',
    });
    await expectSameVersion(gzipSync(nightCsv()), '', { ...CSV, 'content-encoding': 'gzip' });
  });

  it('the feature names in another order, extra columns, CRLF, a BOM, quotes and blank lines', async () => {
    // Reversed columns, the label first and an id column the model does not read.
    const header = ['label', 'id', ...[...PIXELS].reverse()];
    const lines = night.map((r, i) => [test.y[i], `"row ${i}, night"`, ...[...r].reverse()]);
    // Quoted numbers, cells with spaces around them, a blank line: parseCsv's rules.
    lines[3] = lines[3]!.map((c, j) => (j >= 2 ? `"${c}"` : c));
    lines[5] = lines[5]!.map((c, j) => (j >= 2 ? ` ${c} ` : c));
    const text = csvText(header, lines, '\r\n').replace('\r\n', '\r\n\r\n');
    await expectSameVersion(`\uFEFF${text}`);
  });

  it('without the feature names: every column but label, or but label_column', async () => {
    const anonymous = Array.from({ length: 64 }, (_, i) => `x${i}`);
    const labelled = night.map((r, i) => [...r.slice(0, 10), test.y[i], ...r.slice(10)]);
    await expectSameVersion(
      csvText([...anonymous.slice(0, 10), 'label', ...anonymous.slice(10)], labelled),
    );
    await expectSameVersion(
      csvText([...anonymous.slice(0, 10), 'digit', ...anonymous.slice(10)], labelled),
      '&label_column=digit',
    );
    // No label column at all: the 64 columns in order.
    await expectSameVersion(csvText(anonymous, night));
  });
});

describe('malformed CSV uploads → 4xx problems naming the line', () => {
  let t: TestApp;
  const rows = night.slice(0, 3);
  beforeAll(async () => {
    t = await makeTestApp({ env: { ...UNLIMITED, RECALIBRATION_BODY_LIMIT_BYTES: '4096' } });
  });
  afterAll(async () => {
    await t.close();
  });

  /** The CSV of `rows` (p0 … p63, label) with cell (r, c) of the data replaced by `value`. */
  const withCell = (r: number, c: number, value: string) =>
    csvText(
      [...PIXELS, 'label'],
      rows.map((row, i) => [...row, test.y[i]].map((v, j) => (i === r && j === c ? value : v))),
    );

  it('each mistake: 400 INVALID_INPUT with the CLI’s words for it', async () => {
    const cases: { payload: string | Buffer; detail: string }[] = [
      { payload: `${[...PIXELS, 'label'].join(',')}\n`, detail: 'no data rows after the header' },
      {
        payload: csvText(
          [...PIXELS.slice(0, 62), 'label'],
          rows.map((r) => [...r.slice(0, 62), 1]),
        ),
        detail: '62 feature columns; model "digits" takes 64 (no column named "p62", "p63")',
      },
      {
        payload: nightCsv(rows).replace(/\n([^\n]*)\n$/, (_, last: string) => {
          return `\n${last.slice(0, last.lastIndexOf(','))}\n`;
        }),
        detail: 'line 4 has 64 cells, the header has 65',
      },
      { payload: withCell(0, 5, 'x'), detail: 'line 2, column "p5": "x" is not a finite number' },
      { payload: withCell(1, 0, ''), detail: 'line 3, column "p0": "" is not a finite number' },
      {
        payload: withCell(1, 7, 'NaN'),
        detail: 'line 3, column "p7": "NaN" is not a finite number',
      },
      {
        payload: withCell(2, 63, '-Infinity'),
        detail: 'line 4, column "p63": "-Infinity" is not a finite number',
      },
      {
        payload: withCell(2, 1, '0x10'),
        detail: 'line 4, column "p1": "0x10" is not a finite number',
      },
      {
        payload: withCell(2, 2, '1e39'),
        // In every reader's words (NDJSON, JSON, float32 and the CLIs say the same).
        detail: `line 4, column "p2": "1e39" is ${FLOAT32_RANGE_MESSAGE}`,
      },
      {
        payload: `p0,p0,${PIXELS.slice(2).join(',')}\n${rows[0]!.join(',')}\n`,
        detail: 'header names column "p0" twice',
      },
      {
        payload: `${rows[0]!.join(',')}\n${rows[1]!.join(',')}\n`,
        detail: 'no header row (line 1 holds only numbers); the first line must name the columns',
      },
      {
        payload: `${[...PIXELS, 'label'].join(',')}\n"${rows[0]!.join(',')}\n`,
        detail:
          'not valid CSV: a quoted cell of the row after line 1 is still open at the end of the file',
      },
      {
        payload: withCell(1, 3, '1"2'),
        detail: 'line 3: not valid CSV: a quote inside the unquoted cell "1"',
      },
      {
        payload: Buffer.concat([Buffer.from(`${PIXELS.join(',')}\n`), Buffer.from([0xff, 0x2c])]),
        detail: 'the request body is not valid UTF-8',
      },
    ];
    for (const c of cases) {
      const res = await recalibrate(t, c.payload);
      const body = expectProblem(res, 400, 'INVALID_INPUT', RECALIBRATE);
      expect(body.detail).toBe(c.detail);
    }
    // Nothing was published.
    const listing = await t.app.inject({ method: 'GET', url: '/v1/models/digits/versions' });
    expect(listing.json<{ versions: unknown[] }>().versions).toHaveLength(1);
  });

  it('an empty body → 400 TOO_FEW_SAMPLES as every other upload form', async () => {
    for (const payload of ['', '\n\r\n\n']) {
      const body = expectProblem(await recalibrate(t, payload), 400, 'TOO_FEW_SAMPLES');
      expect(body.detail).toBe('no rows were received (an empty upload): need at least 2 samples');
    }
  });

  it('a body over RECALIBRATION_BODY_LIMIT_BYTES → 413 BODY_TOO_LARGE', async () => {
    const big = nightCsv(night.slice(0, 40));
    expect(big.length).toBeGreaterThan(4096);
    const body = expectProblem(await recalibrate(t, big), 413, 'BODY_TOO_LARGE');
    expect(body.detail).toMatch(/RECALIBRATION_BODY_LIMIT_BYTES/);
  });

  it('a charset other than UTF-8, header=absent or application/csv → 415 before the body is read', async () => {
    const cases: { type: string; detail: string }[] = [
      {
        type: 'text/csv; charset=latin1',
        detail:
          'text/csv with charset "latin1" is not read: send the CSV as UTF-8 (charset=utf-8, or no charset)',
      },
      {
        type: 'text/csv; charset="UTF-16"',
        detail:
          'text/csv with charset "UTF-16" is not read: send the CSV as UTF-8 (charset=utf-8, or no charset)',
      },
      {
        type: 'text/csv; header=absent',
        detail: 'text/csv with header=absent is not read: the first line must name the columns',
      },
      {
        type: 'application/csv',
        detail:
          'unsupported Content-Type; this route accepts application/json, application/x-www-form-urlencoded (read as JSON), application/x-ndjson, text/csv, application/octet-stream',
      },
    ];
    for (const c of cases) {
      const res = await recalibrate(t, nightCsv(rows), {
        headers: { ...ADMIN, 'content-type': c.type },
      });
      expect(expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE').detail).toBe(c.detail);
    }
  });

  it('label_column with another upload form → 400 (nothing would read it)', async () => {
    const res = await recalibrate(t, ndjsonBody(rows), {
      url: `${RECALIBRATE}?label_column=digit`,
      headers: NDJSON,
    });
    const body = expectProblem(res, 400, 'INVALID_INPUT');
    expect(body.detail).toBe('label_column: read from a text/csv upload only');
    expect(body.errors?.[0]?.path).toBe('query.label_column');
  });

  it('a label_column the header does not have → 400, as the CLI refuses it (review44: ignored)', async () => {
    const res = await recalibrate(t, nightCsv(rows), {
      url: `${RECALIBRATE}?label_column=lable`,
      headers: { ...ADMIN, 'content-type': 'text/csv' },
    });
    const body = expectProblem(res, 400, 'INVALID_INPUT');
    // The likely misspelling is named, and the cut list still ends with the last column.
    expect(body.detail).toMatch(
      /^unknown label column "lable" \(did you mean "label"\? columns: "p0", "p1", .*"p19", … 44 more …, "label"\)$/,
    );
  });
});
