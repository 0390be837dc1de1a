import { type FieldRule, type MessageRule, readTag, skipGroup, skipValue } from './wire-check.js';

const LENGTH = 2;
const GROUP_START = 3;

/** One part of a message as it is written back. */
interface Piece {
  /** Written as it came: a stretch of untouched fields, or a oneof's scalar member with its tag. */
  bytes?: Uint8Array;
  /** A singular message field (or a oneof's message member): its tag's bytes, as sent. */
  tag?: Uint8Array;
  /** Its first instance whole (tag, length, body), written as it came when nothing changes. */
  first?: Uint8Array;
  /** The bodies of its instances, merged into one. */
  bodies?: Uint8Array[];
  field?: FieldRule;
  /** Replaced by a later member of its oneof. */
  dropped?: boolean;
}

/**
 * A checked message (wire-check.ts's checkWire) rewritten as protobuf parses it, for protobufjs,
 * which does not (https://protobuf.dev/programming-guides/encoding/#last-one-wins): the
 * instances of a singular embedded message field are merged — "the parser merges the input like
 * Message::MergeFrom": repeated fields inside concatenated, scalars last-wins, messages merged in
 * turn — where protobufjs keeps the last instance alone (a ModelInferRequest input's `contents`
 * sent twice lost the first's rows; a `parameters` entry's value sent twice, the first's value);
 * and of a oneof only the last member sent is kept ("if the parser encounters multiple members
 * of the same oneof on the wire, only the last member seen is used"), where protobufjs keeps them
 * all and its `oneofs` option names the last declared. A message's instances merged are one
 * message whose body is theirs end to end (protobuf defines the concatenation of two messages'
 * bytes as their merge), written where its first instance was, and read again the same way. A
 * valid encoder never writes this for one message, but concatenated serialisations, which
 * protobuf defines as a merge, do. Every other field is written back as it came, in its order:
 * stretches of them copied whole, so that a request of many small fields costs the rewrite about
 * what the check costs (the gRPC attacker review of 2026-12-06 measured ~1 µs per field when
 * each field was a part of its own).
 */
export function mergeInstances(buf: Uint8Array, rule: MessageRule): Uint8Array {
  return merged(buf, 0, buf.length, rule) ?? buf;
}

/** buf[start, end) rewritten (mergeInstances), or undefined when it is written as it came. */
function merged(
  buf: Uint8Array,
  start: number,
  end: number,
  rule: MessageRule,
): Uint8Array | undefined {
  const pieces: Piece[] = [];
  /** A singular message field's piece, by its number; a oneof's member, by -1 - its index. */
  let followed: Map<number, Piece> | undefined;
  let changed = false;
  /** Where the stretch of fields written as they came starts. */
  let stretch = start;
  const endStretch = (at: number) => {
    if (at > stretch) pieces.push({ bytes: buf.subarray(stretch, at) });
  };
  let at = start;
  while (at < end) {
    const tagStart = at;
    const [number, wire, afterTag] = readTag(buf, at, end, rule.name);
    let bodyStart = afterTag;
    if (wire === GROUP_START) at = skipGroup(buf, afterTag, end, number, rule.name, 1);
    else [bodyStart, at] = skipValue(buf, afterTag, end, wire, rule.name);
    const field = rule.fields.get(number);
    if (field === undefined) continue;
    const message = field.message && wire === LENGTH ? field.message() : undefined;
    if (!field.singularMessage && field.oneof === undefined) {
      // A scalar stays in the stretch; a repeated message (an input, an entry of a map) is
      // rewritten only if something in it is.
      const inner = message && merged(buf, bodyStart, at, message);
      if (inner === undefined) continue;
      changed = true;
      endStretch(tagStart);
      stretch = at;
      pieces.push({
        bytes: Buffer.concat([buf.subarray(tagStart, afterTag), varintBytes(inner.length), inner]),
      });
      continue;
    }
    endStretch(tagStart);
    stretch = at;
    const key = field.oneof === undefined ? number : -1 - field.oneof;
    followed ??= new Map();
    const prior = followed.get(key);
    const body = buf.subarray(bodyStart, at);
    if (message && prior?.field === field && prior.bodies) {
      prior.bodies.push(body);
      changed = true;
      continue;
    }
    if (prior) {
      prior.dropped = true;
      changed = true;
    }
    const piece: Piece = message
      ? {
          tag: buf.subarray(tagStart, afterTag),
          first: buf.subarray(tagStart, at),
          bodies: [body],
          field,
        }
      : { bytes: buf.subarray(tagStart, at) };
    pieces.push(piece);
    followed.set(key, piece);
  }
  endStretch(end);
  const out: Uint8Array[] = [];
  for (const piece of pieces) {
    if (piece.dropped) continue;
    if (piece.bytes) {
      out.push(piece.bytes);
      continue;
    }
    const bodies = piece.bodies!;
    const whole = bodies.length === 1 ? bodies[0]! : Buffer.concat(bodies);
    const inner = merged(whole, 0, whole.length, piece.field!.message!());
    if (bodies.length === 1 && inner === undefined) {
      out.push(piece.first!);
      continue;
    }
    changed = true;
    const body = inner ?? whole;
    out.push(piece.tag!, varintBytes(body.length), body);
  }
  return changed ? Buffer.concat(out) : undefined;
}

/** `value` as a protobuf varint. */
function varintBytes(value: number): Uint8Array {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return Uint8Array.from(bytes);
}
