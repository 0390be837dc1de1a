/**
 * A fault raised while the body of a request no route serves is read: the request is answered with
 * its path's 404 (or 405) as any other error at that stage (app.ts's error handler), and the fault
 * is logged at error with its stack, as every fault is (problem.ts, logIfFault). No real request
 * provokes one today; the JSON parser is made to throw on a marker body to stand for a bug in it.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type LoggedApp, makeLoggedApp } from '../helpers/admin.js';

const MARKER = 'fault-in-the-parser';

vi.mock('../../src/http/json-body.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../src/http/json-body.js')>();
  return {
    ...original,
    parseJsonBytes: (...args: Parameters<typeof original.parseJsonBytes>) => {
      if (args[1].includes(MARKER)) throw new TypeError('a bug in the parser');
      return original.parseJsonBytes(...args);
    },
  };
});

interface Line {
  level: number;
  msg: string;
  request_id?: string;
  status?: number;
  err?: { type: string; message: string; stack: string };
}
const ERROR = 50;

describe('a fault while the body of a request no route serves is read', () => {
  let served: LoggedApp;
  beforeAll(async () => {
    served = await makeLoggedApp({ level: 'info' });
  });
  afterAll(async () => {
    await served.close();
  });

  const linesOf = (id: string): Line[] =>
    served.logs.map((l) => JSON.parse(l) as Line).filter((l) => l.request_id === id);
  /** A JSON POST: its status and the log lines of its request. */
  const post = async (url: string, payload: string) => {
    const res = await served.app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json' },
      payload,
    });
    return {
      status: res.statusCode,
      lines: linesOf(res.json<{ request_id: string }>().request_id),
    };
  };

  it('is answered with the path’s 404 and logged at error with its stack', async () => {
    const { status, lines } = await post('/v1/nothing', JSON.stringify({ x: MARKER }));
    expect(status).toBe(404);
    const fault = lines.find((l) => l.level === ERROR);
    expect(fault?.msg).toBe('request failed');
    expect(fault?.err?.message).toBe('a bug in the parser');
    expect(fault?.err?.stack).toContain('TypeError');
    // The request line as for any 404.
    expect(lines.find((l) => l.status === 404)).toBeDefined();
  });

  it('a client’s malformed body on such a path is its 404 alone, with no error line', async () => {
    const { status, lines } = await post('/v1/nothing', '{"x": ');
    expect(status).toBe(404);
    expect(lines.filter((l) => l.level === ERROR)).toEqual([]);
  });

  it('the same fault on a route that reads JSON is a 500, logged the same way', async () => {
    const { status, lines } = await post(
      '/v1/models/digits:predict',
      JSON.stringify({ x: MARKER }),
    );
    expect(status).toBe(500);
    expect(lines.find((l) => l.level === ERROR)?.err?.message).toBe('a bug in the parser');
  });
});
