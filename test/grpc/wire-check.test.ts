/**
 * wire-check.ts on its own: unknown groups are skipped up to their own end tag, nested ones
 * included, at most MAX_GROUP_DEPTH deep; a known field is never read as a group.
 */
import { loadSync } from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import { PROTO_FILE, PROTO_OPTIONS } from '../../src/grpc/proto.js';
import {
  MAX_GROUP_DEPTH,
  type MessageDescriptor,
  messageRule,
  wireProblem,
} from '../../src/grpc/wire-check.js';

const loaded = loadSync(PROTO_FILE, PROTO_OPTIONS);
const rule = messageRule(
  'ModelInferRequest',
  'inference',
  (name) => (loaded[`inference.${name}`] as { type?: MessageDescriptor } | undefined)?.type,
);
/** Tags of fields below 16 fit one byte: number * 8 + wire. */
const start = (n: number) => [n * 8 + 3];
const stop = (n: number) => [n * 8 + 4];
const check = (bytes: number[]) => wireProblem(Uint8Array.from(bytes), rule);
/** `depth` unknown groups of field 15, each in the previous one. */
const nested = (depth: number) => [
  ...Array.from({ length: depth }, () => start(15)).flat(),
  ...Array.from({ length: depth }, () => stop(15)).flat(),
];

describe('wireProblem: groups', () => {
  it('skips an unknown group, its fields and nested groups, and reads on after it', () => {
    // Field 15 group: a varint, a fixed32, a string, a nested group of 14; then model_name "A".
    const group = [...start(15), 0x08, 0x07, 0x15, 1, 2, 3, 4, 0x1a, 1, 0x41];
    const inner = [...start(14), 0x08, 0x01, ...stop(14)];
    expect(check([...group, ...inner, ...stop(15), 0x0a, 0x01, 0x41])).toBeUndefined();
    // What follows the group is still checked: model_name with bad UTF-8.
    expect(check([...start(15), ...stop(15), 0x0a, 0x01, 0xff])).toMatch(/not valid UTF-8/);
  });

  it(`skips groups nested ${MAX_GROUP_DEPTH} deep, refuses ${MAX_GROUP_DEPTH + 1}`, () => {
    expect(check(nested(MAX_GROUP_DEPTH))).toBeUndefined();
    expect(check(nested(MAX_GROUP_DEPTH + 1))).toMatch(
      new RegExp(`groups nested more than ${MAX_GROUP_DEPTH} deep`),
    );
  });

  it('refuses a known field as a group, an unmatched end tag, a missing end tag', () => {
    expect(check([...start(1), ...stop(1)])).toMatch(/model_name \(field 1\): group start/);
    expect(check(stop(15))).toMatch(/field 15: a group end with no group started/);
    expect(check(start(15))).toMatch(/field 15 \(a group\): the message ends before/);
    expect(check([...start(15), ...stop(14)])).toMatch(/ended by the end tag of field 14/);
    // Inside a group, values are still bounded by the message.
    expect(check([...start(15), 0x0a, 0x05, 0x41, ...stop(15)])).toMatch(/announces 5 bytes/);
    expect(check([...start(15), 0x0e])).toMatch(/wire type 6 does not exist/);
  });
});
