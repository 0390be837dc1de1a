/**
 * grpc-js answers some malformed requests INTERNAL itself — a message that does not decompress
 * with its grpc-encoding, a grpc-timeout that is no timeout. They are the client's errors: logged
 * at info like every other client error, never as 'grpc request failed' at error, which any
 * client could otherwise fill the error log with (review54).
 */
import { connect } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { startGrpc } from '../helpers/grpc.js';

let t: TestApp | undefined;
let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  await t?.close();
  stop = undefined;
  t = undefined;
});

/** One ServerLive call with extra headers and a message frame; its grpc-status. */
function call(
  port: number,
  headers: Record<string, string>,
  frame: Buffer,
  message?: (text: string) => void,
): Promise<string> {
  const session = connect(`http://127.0.0.1:${port}`);
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': 'POST',
      ':path': '/inference.GRPCInferenceService/ServerLive',
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    let code = '';
    stream.on('response', (h) => {
      if (h['grpc-status'] !== undefined) code = String(h['grpc-status']);
      if (h['grpc-message'] !== undefined) message?.(String(h['grpc-message']));
    });
    stream.on('trailers', (h) => {
      code = String(h['grpc-status']);
      message?.(String(h['grpc-message']));
    });
    stream.on('data', () => {});
    stream.on('error', reject);
    stream.on('close', () => {
      session.close();
      resolve(code);
    });
    stream.end(frame);
  });
}

describe('INTERNAL statuses grpc-js sends for a malformed request', () => {
  it('are logged at info, not as a failure of the server', async () => {
    t = await makeTestApp();
    const lines: { level: string; msg: string | undefined; line: Record<string, unknown> }[] = [];
    const at = (level: string) => (line: object, msg?: string) =>
      lines.push({ level, msg, line: line as Record<string, unknown> });
    const g = await startGrpc(t, {
      log: { info: at('info'), warn: at('warn'), error: at('error') },
    });
    stop = g.stop;
    // Compressed flag 1 with gzip, and bytes that are no gzip stream.
    const bad = Buffer.concat([Buffer.from([1, 0, 0, 0, 4]), Buffer.from('nope')]);
    expect(await call(g.port, { 'grpc-encoding': 'gzip' }, bad)).toBe('13');
    expect(await call(g.port, { 'grpc-timeout': 'xx' }, Buffer.alloc(5))).toBe('13');
    const internal = lines.filter((l) => l.line.code === 'INTERNAL');
    expect(internal.map((l) => l.line.error)).toEqual([
      expect.stringMatching(/^Failed to decompress message/),
      expect.stringMatching(/^Invalid grpc-timeout value/),
    ]);
    expect(internal.map((l) => l.level)).toEqual(['info', 'info']);
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('are bounded as a handler’s are: a 60 KB grpc-timeout is not sent back or logged whole', async () => {
    t = await makeTestApp();
    const lines: Record<string, unknown>[] = [];
    const at = (line: object) => lines.push(line as Record<string, unknown>);
    const g = await startGrpc(t, { log: { info: at, warn: at, error: at } });
    stop = g.stop;
    let sent = '';
    const timeout = 'x'.repeat(60_000);
    const code = await call(g.port, { 'grpc-timeout': timeout }, Buffer.alloc(5), (m) => {
      sent = m;
    });
    expect(code).toBe('13');
    expect(sent).toMatch(/^Invalid%20grpc-timeout%20value/);
    expect(sent.length).toBeLessThan(4_000);
    const line = lines.find((l) => l.code === 'INTERNAL');
    expect(line?.error).toEqual(expect.stringMatching(/^Invalid grpc-timeout value/));
    expect(String(line?.error).length).toBeLessThanOrEqual(1_024);
  });
});
