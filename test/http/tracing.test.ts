/**
 * Request tracing: X-Request-Id on every response (the client's when well-formed), in the request's
 * log line and in problem documents; a W3C traceparent parsed as the spec says, its ids in the log
 * lines, a malformed one ignored; both carried into the recalibration job and its log line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isWellFormedRequestId,
  parseTraceparent,
  REQUEST_ID_LOG_FIELD,
} from '../../src/http/tracing.js';
import { ADMIN, expectProblem, type LoggedApp, makeLoggedApp } from '../helpers/admin.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
/** The example of W3C Trace Context §3.2.2.4 (sampled). */
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;

describe('parseTraceparent (W3C Trace Context Level 1, §3.2)', () => {
  it('parses the spec examples', () => {
    expect(parseTraceparent(TRACEPARENT)).toEqual({
      traceId: TRACE_ID,
      parentId: PARENT_ID,
      flags: '01',
    });
    expect(parseTraceparent(`00-${TRACE_ID}-${PARENT_ID}-00`)?.flags).toBe('00');
  });

  it('accepts a higher version with more fields after a dash (§3.2.4), parsing the first four', () => {
    expect(parseTraceparent(`cc-${TRACE_ID}-${PARENT_ID}-01-what-the-future-holds`)).toEqual({
      traceId: TRACE_ID,
      parentId: PARENT_ID,
      flags: '01',
    });
    expect(parseTraceparent(`01-${TRACE_ID}-${PARENT_ID}-01`)?.traceId).toBe(TRACE_ID);
  });

  const invalid: [string, unknown][] = [
    ['version ff', `ff-${TRACE_ID}-${PARENT_ID}-01`],
    ['version 00 with more fields', `00-${TRACE_ID}-${PARENT_ID}-01-extra`],
    ['a higher version followed by something else than a dash', `cc-${TRACE_ID}-${PARENT_ID}-01x`],
    ['upper-case hex', `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`],
    ['an all-zero trace-id', `00-${'0'.repeat(32)}-${PARENT_ID}-01`],
    ['an all-zero parent-id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['a short trace-id', `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`],
    ['a missing dash', `00-${TRACE_ID}${PARENT_ID}-01-`],
    ['non-hex flags', `00-${TRACE_ID}-${PARENT_ID}-0g`],
    ['a non-hex version', `0x-${TRACE_ID}-${PARENT_ID}-01`],
    ['two headers joined by Node', `${TRACEPARENT}, ${TRACEPARENT}`],
    ['empty', ''],
    ['not a string', ['a', 'b']],
  ];
  for (const [what, value] of invalid) {
    it(`ignores ${what}`, () => {
      expect(parseTraceparent(value)).toBeUndefined();
    });
  }
});

describe('a well-formed X-Request-Id', () => {
  it('is 1 to 128 letters, digits, ".", "_", ":" or "-"', () => {
    for (const id of [
      'a',
      'client-chosen-id-1',
      'f47ac10b-58cc-4372-a567-0e02b2c3d479',
      'x.y_z:1',
      'a'.repeat(128),
    ])
      expect(isWellFormedRequestId(id), id).toBe(true);
    for (const id of [
      '',
      'a'.repeat(129),
      'has space',
      'quote"',
      'new\nline',
      'é',
      'a/b',
      ['a', 'b'],
      undefined,
    ])
      expect(isWellFormedRequestId(id), JSON.stringify(id)).toBe(false);
  });
});

describe('tracing through the app', () => {
  let t: LoggedApp;
  beforeAll(async () => {
    t = await makeLoggedApp({ level: 'info' });
  });
  afterAll(async () => {
    await t.close();
  });

  const logLines = () => t.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
  const requestLine = (id: string) =>
    logLines().find((l) => l.msg === 'request' && l[REQUEST_ID_LOG_FIELD] === id);

  it('a well-formed X-Request-Id is the response header, the log line and the problem document', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      headers: { 'x-request-id': 'edge-proxy:42', traceparent: TRACEPARENT },
      payload: { instances: [[1, 2]] },
    });
    expect(res.headers['x-request-id']).toBe('edge-proxy:42');
    expect(expectProblem(res, 400, 'INVALID_INPUT').request_id).toBe('edge-proxy:42');
    expect(requestLine('edge-proxy:42')).toMatchObject({
      status: 400,
      trace_id: TRACE_ID,
      parent_id: PARENT_ID,
    });
  });

  it('a malformed X-Request-Id is replaced by a UUID, a malformed traceparent ignored', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/v1/models/nope',
      headers: { 'x-request-id': 'bad id with spaces', traceparent: `00-${TRACE_ID}-${PARENT_ID}` },
    });
    const id = res.headers['x-request-id'] as string;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(expectProblem(res, 404, 'MODEL_NOT_FOUND').request_id).toBe(id);
    const line = requestLine(id)!;
    expect(line).toBeDefined();
    expect(line).not.toHaveProperty('trace_id');
    expect(JSON.stringify(t.logs)).not.toContain('bad id with spaces');
  });

  it('every response carries one: successes, 404s of unknown routes, /metrics', async () => {
    for (const url of ['/healthz', '/no/such/route', '/metrics', '/v1/models/digits']) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.headers['x-request-id'], url).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it("the router's 400s carry one too (a malformed URL, an over-long path parameter), the client's when well-formed", async () => {
    for (const url of ['/v1/models/%zz', `/v1/models/${'m'.repeat(300)}`]) {
      const res = await t.app.inject({ method: 'GET', url });
      const id = res.headers['x-request-id'] as string;
      expect(id, url).toMatch(/^[0-9a-f-]{36}$/);
      expect(expectProblem(res, 400, 'INVALID_INPUT').request_id).toBe(id);
      const own = await t.app.inject({ method: 'GET', url, headers: { 'x-request-id': 'edge-9' } });
      expect(own.headers['x-request-id'], url).toBe('edge-9');
    }
  });

  it("the router's 400s write their request line and count in the metrics, as routed requests do", async () => {
    const before = await t.app.inject({ method: 'GET', url: '/metrics' });
    const counted = (text: string) =>
      Number(
        /^normserve_http_requests_total\{method="GET",route="unmatched",status="400",model="",version=""\} (\d+)$/m.exec(
          text,
        )?.[1] ?? 0,
      );
    const urls = ['/v1/models/%zz', `/v1/models/${'m'.repeat(300)}`];
    for (const [i, url] of urls.entries()) {
      const id = `bad-url-${i}`;
      const res = await t.app.inject({ method: 'GET', url, headers: { 'x-request-id': id } });
      expect(res.statusCode).toBe(400);
      expect(requestLine(id), url).toMatchObject({
        level: 30,
        method: 'GET',
        url,
        route: 'unmatched',
        status: 400,
      });
      expect(requestLine(id)?.durationMs).toBeGreaterThanOrEqual(0);
    }
    const after = await t.app.inject({ method: 'GET', url: '/metrics' });
    expect(counted(after.body) - counted(before.body)).toBe(urls.length);
  });

  it('a recalibration carries the request id and trace into its job and its log line', async () => {
    const rows = nightShift(digitsTestRows().x).slice(0, 20);
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      headers: { ...ADMIN, 'x-request-id': 'recal-1', traceparent: TRACEPARENT },
      payload: { instances: rows, activate: false },
    });
    expect(res.statusCode, res.body).toBe(201);
    const jobId = res.json<{ job_id: string }>().job_id;
    const job = await t.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: ADMIN });
    expect(job.json()).toMatchObject({
      state: 'succeeded',
      request_id: 'recal-1',
      trace_id: TRACE_ID,
      parent_id: PARENT_ID,
    });
    expect(logLines().find((l) => l.msg === 'recalibration published')).toMatchObject({
      job: jobId,
      request_id: 'recal-1',
      trace_id: TRACE_ID,
      parent_id: PARENT_ID,
    });
  });
});
