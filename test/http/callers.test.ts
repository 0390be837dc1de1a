/**
 * The place of a connection's closing response in the lame duck and the drain (callers.ts,
 * closesConnection), on a fake server: the orders of arrival and of answers a pipelining client
 * and a mix of slow and fast routes give, each written out (a listening server would need a
 * route slower than another on demand).
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  answerBuilt,
  behindConnectionEnd,
  closesConnection,
  trackCallers,
} from '../../src/http/callers.js';
import type { InferenceService } from '../../src/service/index.js';

/** A followed connection on which `arrive()` receives the next request. */
function connection(): { arrive: () => IncomingMessage } {
  const server = new EventEmitter() as unknown as Server;
  trackCallers(server, { countCallers: () => {} } as unknown as InferenceService, () => {});
  const socket = new EventEmitter() as unknown as Socket;
  server.emit('connection', socket);
  return {
    arrive: () => {
      const request = { socket } as unknown as IncomingMessage;
      const response = Object.assign(new EventEmitter(), { req: request });
      server.emit('request', request, response as unknown as ServerResponse);
      return request;
    },
  };
}

/** What onSend does in the phase: the close decided, then the answer built. */
function answerInPhase(request: IncomingMessage): boolean {
  const close = closesConnection(request);
  answerBuilt(request);
  return close;
}

describe('the closing response of a connection in the lame duck', () => {
  it('a lone request: its answer closes', () => {
    const c = connection();
    expect(answerInPhase(c.arrive())).toBe(true);
  });

  it('pipelined: the last request received when the phase first answers closes; one received later is behind the end', () => {
    const c = connection();
    const first = c.arrive();
    const second = c.arrive();
    expect(answerInPhase(first)).toBe(false);
    // A client that always keeps one in flight: its next request has arrived by each answer.
    const third = c.arrive();
    expect(answerInPhase(second)).toBe(true);
    expect(behindConnectionEnd(third)).toBe(true);
  });

  it('a later answer built before the phase (out of order): the next request to arrive closes, and is processed', () => {
    const c = connection();
    const slow = c.arrive();
    const fast = c.arrive();
    // Built before the phase began: no close on it, and Node sends it after the slow one's.
    answerBuilt(fast);
    expect(answerInPhase(slow)).toBe(false);
    // Both answers went without a close: the client's next request must be answered, with it
    // (it was left unanswered on a connection that never closed: the second reader of 2026-12-05).
    const next = c.arrive();
    expect(behindConnectionEnd(next)).toBe(false);
    expect(answerInPhase(next)).toBe(true);
    expect(behindConnectionEnd(c.arrive())).toBe(true);
  });

  it('answers built out of order within the phase: the place fixed first stands', () => {
    const c = connection();
    const first = c.arrive();
    const second = c.arrive();
    const third = c.arrive();
    expect(answerInPhase(third)).toBe(true);
    expect(answerInPhase(first)).toBe(false);
    expect(answerInPhase(second)).toBe(false);
    expect(behindConnectionEnd(c.arrive())).toBe(true);
  });
});
