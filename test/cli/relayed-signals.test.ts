/**
 * A cluster worker counts each signal its primary relays once (PrimaryChannel, `seq`): the
 * primary's replay of the signals so far to a worker that says it is ready is skipped where the
 * worker had counted them (one SIGTERM while starting counted twice ended the lame duck at once),
 * and a relay lost before the worker's IPC listener existed (Node drops a message sent before a
 * child listens) is counted when a later one arrives.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PrimaryChannel } from '../../src/cli/cluster-messages.js';

const listeners: NodeJS.MessageListener[] = [];
afterEach(() => {
  for (const l of listeners.splice(0)) process.off('message', l);
});

/** A worker's channel whose relayed signals are collected. */
function worker(): {
  relay: (signal: 'SIGTERM' | 'SIGINT', seq: number) => void;
  counted: string[];
} {
  const before = new Set(process.listeners('message'));
  const channel = new PrimaryChannel();
  for (const l of process.listeners('message')) if (!before.has(l)) listeners.push(l);
  const counted: string[] = [];
  channel.onSignal = (signal) => counted.push(signal);
  const relay = (signal: 'SIGTERM' | 'SIGINT', seq: number) =>
    process.emit('message', { type: 'normserve:signal', signal, seq }, undefined);
  return { relay, counted };
}

describe('relayed signals', () => {
  it('counts each once: a replay of those counted is skipped, a later one counts', () => {
    const { relay, counted } = worker();
    relay('SIGTERM', 1);
    // The primary's replay at normserve:ready.
    relay('SIGTERM', 1);
    expect(counted).toEqual(['SIGTERM']);
    relay('SIGINT', 2);
    expect(counted).toEqual(['SIGTERM', 'SIGINT']);
  });

  it('counts a relay it missed when a later one arrives', () => {
    const { relay, counted } = worker();
    relay('SIGTERM', 2);
    expect(counted).toEqual(['SIGTERM', 'SIGTERM']);
    relay('SIGTERM', 1);
    relay('SIGTERM', 2);
    expect(counted).toHaveLength(2);
  });
});
