/**
 * The server's one interceptor (call-interceptor.ts) runs the layers' hooks in the order the four
 * interceptors ran: what arrives goes through the layers first to last, then to the handler; what
 * the handler sends goes through them last to first, then to grpc-js's call. A hook that returns
 * false stops the event and every later one; a layer ends a call through every layer's sendStatus; headers sent with
 * the first message go through the layers' sendMetadata; nothing arrives after a cancel. A
 * stand-in for grpc-js's own call records what reaches it (the server's tests run real calls).
 */
import {
  Metadata,
  type ServerInterceptingCallInterface,
  type ServerMethodDefinition,
} from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  type CallHooks,
  type CallLayer,
  callInterceptor,
  type SentStatus,
} from '../../src/grpc/call-interceptor.js';

type Listener = Parameters<ServerInterceptingCallInterface['start']>[0];

/** grpc-js's own call, as far as the interceptor uses it: it logs what reaches it. */
function ownCall(log: string[]) {
  let listener: Listener | undefined;
  const call = {
    start: (l: Listener) => {
      listener = l;
    },
    sendMetadata: (metadata: Metadata) => log.push(`own sendMetadata ${metadata.get('by')}`),
    sendMessage: (message: unknown, done: () => void) => {
      log.push(`own sendMessage ${message}`);
      done();
    },
    sendStatus: (status: SentStatus) =>
      log.push(`own sendStatus ${status.code} ${status.metadata?.get('by') ?? ''}`),
    startRead: () => log.push('own startRead'),
    getPeer: () => 'peer',
    getDeadline: () => Infinity,
    getHost: () => 'host',
    getAuthContext: () => ({}),
    getConnectionInfo: () => ({}),
    getMetricsRecorder: () => ({}),
  };
  return {
    call: call as unknown as ServerInterceptingCallInterface,
    arrive: () => listener!,
  };
}

const descriptor = {
  path: '/s/M',
  requestStream: false,
  responseStream: false,
} as ServerMethodDefinition<unknown, unknown>;

/** A layer whose hooks log under `name`; `refuse` names the events its hooks stop. */
function layer(name: string, log: string[], refuse: string[] = []): CallLayer {
  const seen = (event: string) => {
    log.push(`${name} ${event}`);
    return !refuse.includes(event.split(' ')[0]!);
  };
  return (): CallHooks => ({
    receiveMetadata: () => seen('metadata'),
    receiveMessage: (m) => seen(`message ${m}`),
    receiveHalfClose: () => seen('halfClose'),
    cancel: () => log.push(`${name} cancel`),
    sendMetadata: (metadata) => {
      log.push(`${name} sendMetadata`);
      metadata.add('by', name);
      return metadata;
    },
    sendStatus: (status) => {
      log.push(`${name} sendStatus`);
      const metadata = status.metadata ?? new Metadata();
      metadata.add('by', name);
      return { ...status, metadata };
    },
  });
}

/** The handler's listener: logs what reaches it. */
const handler = (log: string[]): Listener => ({
  onReceiveMetadata: () => log.push('handler metadata'),
  onReceiveMessage: (m: unknown) => log.push(`handler message ${m}`),
  onReceiveHalfClose: () => log.push('handler halfClose'),
  onCancel: () => log.push('handler cancel'),
});

describe('callInterceptor', () => {
  it('passes what arrives first to last, then to the handler; what is sent last to first', () => {
    const log: string[] = [];
    const own = ownCall(log);
    const call = callInterceptor([layer('a', log), layer('b', log)])(descriptor, own.call);
    call.start(handler(log));
    own.arrive().onReceiveMetadata(new Metadata());
    own.arrive().onReceiveMessage('m1');
    own.arrive().onReceiveHalfClose();
    call.sendMessage('reply', () => call.sendStatus({ code: 0, details: 'OK' }));
    expect(log).toEqual([
      'a metadata',
      'b metadata',
      'handler metadata',
      'a message m1',
      'b message m1',
      'handler message m1',
      'a halfClose',
      'b halfClose',
      'handler halfClose',
      // The headers the first message sends go through the layers' sendMetadata.
      'b sendMetadata',
      'a sendMetadata',
      'own sendMetadata b,a',
      'own sendMessage reply',
      'b sendStatus',
      'a sendStatus',
      'own sendStatus 0 b,a',
    ]);
  });

  it('stops an event a hook refuses; a layer ends the call through every sendStatus', () => {
    const log: string[] = [];
    const own = ownCall(log);
    let ending: { end(status: SentStatus): void } | undefined;
    const ends: CallLayer = (_d, _c, e) => {
      ending = e;
      return undefined;
    };
    const call = callInterceptor([ends, layer('a', log, ['message']), layer('b', log)])(
      descriptor,
      own.call,
    );
    call.start(handler(log));
    own.arrive().onReceiveMetadata(new Metadata());
    own.arrive().onReceiveMessage('m1');
    ending!.end({ code: 3, details: 'no' });
    expect(log).toEqual([
      'a metadata',
      'b metadata',
      'handler metadata',
      'a message m1',
      'b sendStatus',
      'a sendStatus',
      'own sendStatus 3 b,a',
    ]);
  });

  it('lets nothing arrive after a stopped event, as grpc-js holds what follows; a cancel still reaches every layer', () => {
    const log: string[] = [];
    const own = ownCall(log);
    const call = callInterceptor([layer('a', log, ['metadata']), layer('b', log)])(
      descriptor,
      own.call,
    );
    call.start(handler(log));
    own.arrive().onReceiveMetadata(new Metadata());
    own.arrive().onReceiveMessage('m1');
    own.arrive().onReceiveHalfClose();
    own.arrive().onCancel();
    expect(log).toEqual(['a metadata', 'a cancel', 'b cancel', 'handler cancel']);
  });

  it('tells every layer, then the handler, of a cancel; nothing arrives after it', () => {
    const log: string[] = [];
    const own = ownCall(log);
    const call = callInterceptor([layer('a', log), layer('b', log)])(descriptor, own.call);
    call.start(handler(log));
    own.arrive().onCancel();
    own.arrive().onReceiveMessage('late');
    own.arrive().onReceiveHalfClose();
    expect(log).toEqual(['a cancel', 'b cancel', 'handler cancel']);
  });

  it("hands on grpc-js's own call when no layer has hooks", () => {
    const own = ownCall([]);
    expect(callInterceptor([() => undefined])(descriptor, own.call)).toBe(own.call);
  });
});
