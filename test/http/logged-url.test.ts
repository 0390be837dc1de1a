/**
 * The URL a request line records: a query parameter the route does not read is logged by name
 * only (a credential sent as `?access_token=` must not reach the logs); those it reads stay
 * readable; a URL without a query is logged as it is.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { cappedUrl, LOGGED_URL_MAX_CHARS, loggedUrl, REDACTED } from '../../src/http/logged-url.js';
import { type LoggedApp, makeLoggedApp } from '../helpers/admin.js';
import { makeRepository } from '../helpers/app.js';
import { digitsRow } from './http-helpers.js';

describe('loggedUrl', () => {
  const reads = new Map<string, z.ZodType>([
    ['fused', z.enum(['true', 'false'])],
    ['note', z.string()],
  ]);
  it('leaves a URL without a query, and the parameters the route reads, as they are', () => {
    expect(loggedUrl('/v1/models/digits:predict', reads)).toBe('/v1/models/digits:predict');
    expect(loggedUrl('/p?fused=false&note=night%20camera', reads)).toBe(
      '/p?fused=false&note=night%20camera',
    );
    expect(loggedUrl('/p?', reads)).toBe('/p?');
  });
  it('logs every other parameter by name only, and a bare word not at all', () => {
    expect(loggedUrl('/p?access_token=s3cret&fused=false', reads)).toBe(
      `/p?access_token=${REDACTED}&fused=false`,
    );
    expect(loggedUrl('/p?s3cret', reads)).toBe(`/p?${REDACTED}`);
    expect(loggedUrl('/p?fused', reads)).toBe('/p?fused');
    expect(loggedUrl('/p?key=a=b&&x=', reads)).toBe(`/p?key=${REDACTED}&&x=${REDACTED}`);
    // Names compare decoded, as the route reads them; one that does not decode is unknown.
    expect(loggedUrl('/p?f%75sed=false&%zz=1', reads)).toBe(`/p?f%75sed=false&%zz=${REDACTED}`);
    expect(loggedUrl('/p?note+x=1', new Map([['note x', z.string()]]))).toBe('/p?note+x=1');
  });
  it('redacts a value of a read parameter that its field refuses, so nothing rides on it', () => {
    expect(loggedUrl('/p?fused=false;access_token=s3cret', reads)).toBe(`/p?fused=${REDACTED}`);
    expect(loggedUrl('/p?fused=false%26access_token%3Ds3cret', reads)).toBe(`/p?fused=${REDACTED}`);
    expect(loggedUrl('/p?fused=false&fused=s3cret', reads)).toBe(
      `/p?fused=false&fused=${REDACTED}`,
    );
    expect(loggedUrl('/p?fused=%zz', reads)).toBe(`/p?fused=${REDACTED}`);
  });
  it('logs a fragment and path parameters after a ";" as [Redacted]', () => {
    expect(loggedUrl('/healthz#access_token=s3cret', reads)).toBe(`/healthz#${REDACTED}`);
    expect(loggedUrl('/p?fused=true#s3cret?x', reads)).toBe(`/p?fused=true#${REDACTED}`);
    expect(loggedUrl('/m/digits;jsessionid=s3cret', reads)).toBe(`/m/digits;${REDACTED}`);
    expect(loggedUrl('/m/d;a=s3cret/x?fused=true', reads)).toBe(`/m/d;${REDACTED}?fused=true`);
  });
});

describe('request lines in the log', () => {
  let served: LoggedApp;
  beforeAll(async () => {
    served = await makeLoggedApp({ repository: makeRepository(['digits']), level: 'info' });
  });
  afterAll(async () => {
    await served.close();
  });

  const urlOf = (id: string): string | undefined =>
    served.logs
      .map((l) => JSON.parse(l) as { request_id?: string; url?: string })
      .find((l) => l.request_id === id)?.url;

  it('record no value of a parameter the route does not read, answered or refused', async () => {
    const cases: [string, string, number][] = [
      // Refused: :predict reads only `fused`.
      [
        '/v1/models/digits:predict?access_token=s3cret&fused=false',
        `/v1/models/digits:predict?access_token=${REDACTED}&fused=false`,
        400,
      ],
      ['/v1/models/digits:predict?fused=false', '/v1/models/digits:predict?fused=false', 200],
      // The health probes answer any query; no route at all reads none.
      ['/healthz?api_key=s3cret', `/healthz?api_key=${REDACTED}`, 200],
      ['/nowhere?token=s3cret', `/nowhere?token=${REDACTED}`, 404],
      // A path parameter no route has (a fragment: the unit test above; inject drops it).
      ['/readyz;jsessionid=s3cret', `/readyz;${REDACTED}`, 404],
      // A read parameter carrying another in its value.
      [
        '/v1/models/digits:predict?fused=false;access_token=s3cret',
        `/v1/models/digits:predict?fused=${REDACTED}`,
        400,
      ],
    ];
    for (const [i, [url, logged, status]] of cases.entries()) {
      const id = `logged-url-${i}`;
      const predict = url.startsWith('/v1/');
      const res = await served.app.inject({
        method: predict ? 'POST' : 'GET',
        url,
        headers: { 'x-request-id': id },
        ...(predict ? { payload: { instances: [digitsRow()] } } : {}),
      });
      expect(res.statusCode, url).toBe(status);
      expect(urlOf(id), url).toBe(logged);
    }
    expect(served.logs.join('\n')).not.toContain('s3cret');
  });

  it('cut a long URL at LOGGED_URL_MAX_CHARS saying how long it was, so the line stays far under 16 KiB (h258)', async () => {
    const url = `/${'b'.repeat(16_000)}`;
    const res = await served.app.inject({ url, headers: { 'x-request-id': 'long-url' } });
    expect(res.statusCode).toBe(404);
    expect(urlOf('long-url')).toBe(
      `/${'b'.repeat(LOGGED_URL_MAX_CHARS - 1)}…[cut: ${url.length} characters as sent]`,
    );
    const line = served.logs.find((l) => l.includes('"long-url"'))!;
    expect(line.length).toBeLessThan(4096);
    // Redaction makes the logged form longer than the URL: the length said is the one sent.
    const redacted = `/nowhere?${'a&'.repeat(1100)}`;
    await served.app.inject({ url: redacted, headers: { 'x-request-id': 'long-redacted' } });
    expect(urlOf('long-redacted')).toMatch(
      new RegExp(`…\\[cut: ${redacted.length} characters as sent\\]$`),
    );
  });
});

describe('cappedUrl', () => {
  it('leaves a URL up to the cap as it is, and never cuts inside a surrogate pair', () => {
    const fits = `/${'a'.repeat(LOGGED_URL_MAX_CHARS - 1)}`;
    expect(cappedUrl(fits)).toBe(fits);
    const pairAtCut = `/${'a'.repeat(LOGGED_URL_MAX_CHARS - 2)}😀tail`;
    expect(cappedUrl(pairAtCut)).toBe(
      `/${'a'.repeat(LOGGED_URL_MAX_CHARS - 2)}…[cut: ${pairAtCut.length} characters as sent]`,
    );
  });
});
