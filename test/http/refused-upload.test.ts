/**
 * A streamed recalibration upload refused while it arrives (a bad line at its start or in its
 * middle, a row the session refuses, a body over RECALIBRATION_BODY_LIMIT_BYTES) is the request's
 * 4xx, logged once and counted as that status: never as the 499 of a client that went (the
 * reader once destroyed the request when it stopped, which Node marks aborted). The rest of the
 * body is not read: the server closes the connection after the response, so a client that would
 * send forever is stopped. Outcomes and order only; the bounds are generous.
 */
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, float32Body, type LoggedApp, makeLoggedApp, ndjsonBody } from '../helpers/admin.js';
import { digitsTestRows } from '../helpers/digits.js';
import { streamedUpload } from '../helpers/streamed-upload.js';

const RECALIBRATE = '/v1/models/digits:recalibrate';
const rows = digitsTestRows().x;
/** The upload limit of the app; the client would send far more than this. */
const LIMIT_BYTES = 4 * 1024 * 1024;
/** What the client offers at most: the server must stop it long before. */
const CLIENT_CAP_BYTES = 256 * 1024 * 1024;
/**
 * Rows before a bad one "in the middle": past the readers' first chunk (4,096 rows), and its chunk
 * (the session judges float32 rows a chunk at a time) well within LIMIT_BYTES.
 */
const MIDDLE = 5_000;

interface Line {
  level: number;
  msg: string;
  request_id?: string;
  status?: number;
}

type Form = 'ndjson' | 'csv' | 'float32';
const TYPES: Record<Form, string> = {
  ndjson: 'application/x-ndjson',
  csv: 'text/csv',
  float32: 'application/octet-stream',
};
const header = `${Array.from({ length: 64 }, (_, i) => `p${i}`).join(',')}\n`;
/** Rows in the form's bytes; `bad` makes the first of them one the server refuses. */
function encode(form: Form, part: readonly (readonly number[])[], bad: boolean): Buffer {
  if (form === 'float32') {
    const body = float32Body(part);
    if (bad) body.writeFloatLE(Number.NaN, 3 * 4);
    return body;
  }
  const text =
    form === 'ndjson' ? ndjsonBody(part) : `${part.map((r) => r.join(',')).join('\n')}\n`;
  if (!bad) return Buffer.from(text);
  const first = text.indexOf('\n');
  const badLine = form === 'ndjson' ? '[1,2' : `x${',0'.repeat(63)}`;
  return Buffer.from(`${badLine}${text.slice(first)}`);
}

describe('a streamed upload refused while it arrives', () => {
  let t: LoggedApp;
  let port = 0;
  beforeAll(async () => {
    t = await makeLoggedApp({
      level: 'info',
      env: { RECALIBRATION_BODY_LIMIT_BYTES: String(LIMIT_BYTES) },
    });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = (t.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await t.close();
  });

  /**
   * Sends the form's upload, its bad row after `goodRows` good ones (none when undefined), then
   * good rows for as long as the server takes them (up to CLIENT_CAP_BYTES); resolves with the
   * response and the bytes the client could write before the server closed the connection.
   */
  async function upload(form: Form, id: string, goodRows: number | undefined) {
    const { req, response } = streamedUpload(port, RECALIBRATE, {
      ...ADMIN,
      'content-type': TYPES[form],
      'x-request-id': id,
    });
    // The connection ends when the server closes it; write errors (EPIPE, ECONNRESET) end it too.
    req.on('error', () => {});
    const closed = new Promise<void>((resolve) => req.once('close', resolve));
    let open = true;
    void closed.then(() => {
      open = false;
    });
    let written = 0;
    const write = async (bytes: Buffer): Promise<void> => {
      written += bytes.length;
      if (!req.write(bytes)) await Promise.race([new Promise((r) => req.once('drain', r)), closed]);
    };
    if (form === 'csv') await write(Buffer.from(header));
    const good = encode(form, rows, false);
    if (goodRows !== undefined) {
      for (let r = 0; r < goodRows && open; r += rows.length) await write(good);
      await write(encode(form, rows, true));
    }
    while (open && written < CLIENT_CAP_BYTES) await write(good);
    req.destroy();
    return { answer: await response, written };
  }

  const cases: [Form, string, number, number | undefined, RegExp][] = [];
  for (const form of ['ndjson', 'csv', 'float32'] as const) {
    cases.push([form, 'at its first row', 400, 0, /line 1|line 2|row 0/]);
    cases.push([form, 'in its middle (row 5,040)', 400, MIDDLE, /line \d{4}|row \d{4}/]);
    cases.push([form, 'over the upload limit', 413, undefined, /RECALIBRATION_BODY_LIMIT_BYTES/]);
  }
  it.each(cases)(
    '%s, refused %s: logged once and counted as its %i, never 499; the rest is not read',
    async (form, where, status, goodRows, detail) => {
      const id = `${form}-${where.replace(/[^a-z0-9]+/g, '-')}`;
      const { answer, written } = await upload(form, id, goodRows);
      expect(answer.status, answer.body).toBe(status);
      expect((JSON.parse(answer.body) as { detail: string }).detail).toMatch(detail);
      // The server stopped reading and closed the connection: the client could not send it all.
      expect(written).toBeLessThan(CLIENT_CAP_BYTES);
      const statuses = t.logs
        .map((l) => JSON.parse(l) as Line)
        .filter((l) => l.request_id === id && l.status !== undefined)
        .map((l) => [l.status, l.msg]);
      expect(statuses).toEqual([[status, 'request']]);
      const metrics = (await t.app.inject({ url: '/metrics' })).body;
      expect(metrics).not.toMatch(/^normserve_http_requests_total\{[^}]*status="499"/m);
    },
  );

  it('each refusal was counted under its own status', async () => {
    const metrics = (await t.app.inject({ url: '/metrics' })).body;
    const count = (status: number) =>
      Number(
        new RegExp(
          `^normserve_http_requests_total\\{method="POST",route="/v1/models/\\{name\\}:recalibrate",status="${status}",[^}]*\\} (\\d+)$`,
          'm',
        ).exec(metrics)?.[1] ?? 0,
      );
    expect([count(400), count(413), count(499)]).toEqual([6, 3, 0]);
  });
});
