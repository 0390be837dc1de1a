import { type FieldRule, type MessageRule, readTag, skipGroup, skipValue } from './wire-check.js';

const LENGTH = 2;
const GROUP_START = 3;

/** One field instance of a message, as it is written back. */
interface Piece {
  /** Its tag's bytes, as sent. */
  tag: Uint8Array;
  /** Everything after the tag, as sent (a scalar, a string, an unknown field, a group). */
  raw?: Uint8Array;
  /** A message field: the bodies of its instances, merged into one. */
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
 * protobuf defines as a merge, do. Every other field is written back as it came, in its order.
 */
export function mergeInstances(buf: Uint8Array, rule: MessageRule): Uint8Array {
  return merged(buf, 0, buf.length, rule);
}

function merged(buf: Uint8Array, start: number, end: number, rule: MessageRule): Uint8Array {
  const pieces: Piece[] = [];
  /** A singular message field's piece, by its number. */
  const singular = new Map<number, Piece>();
  /** A oneof's member piece, by the oneof's index. */
  const oneofs = new Map<number, Piece>();
  let at = start;
  while (at < end) {
    const tagStart = at;
    const [number, wire, afterTag] = readTag(buf, at, end, rule.name);
    at =
      wire === GROUP_START
        ? skipGroup(buf, afterTag, end, number, rule.name, 1)
        : skipValue(buf, afterTag, end, wire, rule.name)[1];
    const tag = buf.subarray(tagStart, afterTag);
    const field = rule.fields.get(number);
    const body = () => buf.subarray(skipValue(buf, afterTag, end, LENGTH, rule.name)[0], at);
    const prior =
      field?.oneof !== undefined
        ? oneofs.get(field.oneof)
        : field?.singular
          ? singular.get(number)
          : undefined;
    if (field?.message && prior?.field === field && prior.bodies) {
      prior.bodies.push(body());
      continue;
    }
    if (prior) prior.dropped = true;
    const piece: Piece = field?.message
      ? { tag, bodies: [body()], field }
      : { tag, raw: buf.subarray(afterTag, at), ...(field ? { field } : {}) };
    pieces.push(piece);
    if (field?.oneof !== undefined) oneofs.set(field.oneof, piece);
    else if (field?.singular) singular.set(number, piece);
  }
  const out: Uint8Array[] = [];
  for (const piece of pieces) {
    if (piece.dropped) continue;
    out.push(piece.tag);
    if (piece.bodies && piece.field?.message) {
      const whole = piece.bodies.length === 1 ? piece.bodies[0]! : Buffer.concat(piece.bodies);
      const inner = merged(whole, 0, whole.length, piece.field.message());
      out.push(varintBytes(inner.length), inner);
    } else if (piece.raw) {
      out.push(piece.raw);
    }
  }
  return Buffer.concat(out);
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
