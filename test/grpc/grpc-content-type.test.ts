/**
 * A call's `content-type` (content-type.ts): a codec other than protobuf (`application/grpc+json`,
 * which grpc-js admits and decodes as protobuf) is refused UNIMPLEMENTED from its headers —
 * recorded and logged, its message never read, its handler never run — while
 * `application/grpc` and `application/grpc+proto`, any case, with parameters, keep working.
 */
import type { ClientHttp2Session } from 'node:http2';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servedContentType } from '../../src/grpc/content-type.js';
import { modelInferFrame, useRecordedGrpc } from '../helpers/grpc.js';
import {
  codeOf,
  messageOf,
  openRawCall,
  type RawCall,
  rawSession,
  statusOf,
} from '../helpers/raw-grpc.js';

const INFER = '/inference.GRPCInferenceService/ModelInfer';
const LIVE = '/inference.GRPCInferenceService/ServerLive';
const POLL = { timeout: 20_000, interval: 20 };

const g = useRecordedGrpc();
let s: ClientHttp2Session;
beforeAll(async () => {
  s = await rawSession(g.server.port);
});
afterAll(() => s.destroy());

/** A call of `path` whose content-type is `contentType`. */
const open = (path: string, contentType: string): RawCall =>
  openRawCall(s, path, { 'content-type': contentType });

/** An empty message (ServerLive's), framed, and the end of the stream. */
const EMPTY_FRAME = Buffer.alloc(5);

describe('gRPC content-type', () => {
  it('a content-subtype other than proto is refused UNIMPLEMENTED from its headers, recorded and logged, its message never read', async () => {
    // The message is never sent: the answer comes from the headers alone.
    const call = open(INFER, 'application/grpc+json');
    await expect.poll(() => call.stream.closed, POLL).toBe(true);
    expect(statusOf(call)).toBe(status.UNIMPLEMENTED);
    expect(messageOf(call)).toContain('content-type "application/grpc+json" is not served');
    expect(messageOf(call)).toContain('application/grpc+proto');
    expect(codeOf(call)).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(call.dataBytes).toBe(0);
    expect(g.records).toEqual([{ method: 'ModelInfer', code: 'UNIMPLEMENTED', model: '' }]);
    const line = g.lines.find((l) => l.grpcMethod === 'ModelInfer');
    expect(line).toMatchObject({ level: 'info', code: 'UNIMPLEMENTED' });
    expect(line?.error).toContain('application/grpc+json');
  });

  it('a whole message in another codec is not decoded as protobuf', async () => {
    // grpc-js would read these bytes (an empty message) as protobuf and answer ServerLive.
    for (const type of ['application/grpc+JSON', 'application/grpc+thrift; charset=utf-8']) {
      const call = open(LIVE, type);
      call.stream.end(EMPTY_FRAME);
      await expect.poll(() => call.stream.closed, POLL).toBe(true);
      expect(statusOf(call)).toBe(status.UNIMPLEMENTED);
      expect(call.dataBytes).toBe(0);
    }
  });

  it('application/grpc and application/grpc+proto, any case, with parameters, are served', async () => {
    for (const type of [
      'application/grpc',
      'application/grpc+proto',
      'application/grpc+PROTO',
      'application/grpc; charset=utf-8',
      'application/grpc+proto;charset=utf-8',
    ]) {
      const call = open(INFER, type);
      call.stream.end(modelInferFrame(1));
      await expect.poll(() => call.stream.closed, POLL).toBe(true);
      expect({ type, code: statusOf(call) }).toEqual({ type, code: status.OK });
      expect(call.dataBytes).toBeGreaterThan(0);
    }
  });

  it('servedContentType: protobuf only', () => {
    for (const ok of [
      'application/grpc',
      'APPLICATION/GRPC+Proto',
      'application/grpc+',
      'application/grpc ; a=b',
    ])
      expect(servedContentType(ok)).toBe(true);
    for (const no of [
      'application/grpc+json',
      'application/grpcfoo',
      'application/grpc+protobuf',
      'application/json',
    ])
      expect(servedContentType(no)).toBe(false);
  });
});
