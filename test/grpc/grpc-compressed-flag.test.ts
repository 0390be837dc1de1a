/**
 * A message frame whose Compressed-Flag is 1 on a call without `grpc-encoding` (or with
 * `identity`): gRPC's compression spec says it MUST fail with INTERNAL (compression.md, test case
 * 6); grpc-js 1.14 reads it as uncompressed bytes, and nothing public shows the flag (docs/grpc.md,
 * "Compressed-Flag"). This pins what the server does today: should it start failing, grpc-js
 * has changed, and docs/grpc.md is to be updated with it.
 */
import type { ClientHttp2Session } from 'node:http2';
import { gzipSync } from 'node:zlib';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useRecordedGrpc } from '../helpers/grpc.js';
import { messageOf, openRawCall, rawSession, statusOf } from '../helpers/raw-grpc.js';

const LIVE = '/inference.GRPCInferenceService/ServerLive';
const MODEL_READY = '/inference.GRPCInferenceService/ModelReady';

const g = useRecordedGrpc();
let s: ClientHttp2Session;
beforeAll(async () => {
  s = await rawSession(g.server.port);
});
afterAll(() => s.destroy());

/** One call of `path` whose one frame has Compressed-Flag 1: its status and message. */
async function flagged(path: string, message: Buffer, headers: Record<string, string> = {}) {
  const call = openRawCall(s, path, headers);
  const frame = Buffer.alloc(5 + message.length);
  frame[0] = 1;
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  call.stream.end(frame);
  await expect.poll(() => call.closed, { timeout: 20_000, interval: 20 }).toBe(true);
  return { code: statusOf(call), details: messageOf(call) };
}

describe('gRPC Compressed-Flag without grpc-encoding (grpc-js 1.14)', () => {
  it('is read as uncompressed: a plain message is served, with or without grpc-encoding: identity', async () => {
    expect((await flagged(LIVE, Buffer.alloc(0))).code).toBe(status.OK);
    expect((await flagged(LIVE, Buffer.alloc(0), { 'grpc-encoding': 'identity' })).code).toBe(
      status.OK,
    );
  });

  it('gzip bytes so flagged are refused INVALID_ARGUMENT, the message saying grpc-encoding is missing', async () => {
    // ModelReady {name: "digits"}, gzipped.
    const answer = await flagged(
      MODEL_READY,
      gzipSync(Buffer.from([0x0a, 6, ...Buffer.from('digits')])),
    );
    expect(answer.code).toBe(status.INVALID_ARGUMENT);
    expect(answer.details).toContain('needs the grpc-encoding: gzip header');
  });
});
