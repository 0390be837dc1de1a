/**
 * A strict reading of the protobuf wire format (https://protobuf.dev/programming-guides/encoding/)
 * against a message's descriptor, before protobufjs decodes it. protobufjs's generated decoders
 * read a known field by its declared type whatever wire type it came with (field 1 sent as fixed32
 * was read as a string), and a field that ends the message early could still decode
 * (`0a 7f 41`: 127 bytes announced, one sent, read as model "A"). Here every tag is checked: field
 * number ≥ 1, wire type 0–5, a known field with the wire type of its declared type (or
 * length-delimited for a packed repeated scalar; never a group, 3 and 4, which proto3 does not
 * declare), varints of at most 10 bytes, fixed and length-delimited values inside the message,
 * known messages and map entries checked the same way, strings valid UTF-8. Unknown fields are
 * skipped (proto3 keeps them), an unknown group too, as protobuf's own parsers skip one: up to
 * the end tag of its field number, groups nested in it included (at most MAX_GROUP_DEPTH deep);
 * a group without its end tag, or ended by another field's, is refused. And what the decode
 * would build is bounded: at most MAX_FIELDS fields, and packed numbers by the message's size.
 */

/** A field of a message as @grpc/proto-loader describes it (DescriptorProto, FieldDescriptorProto). */
interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}
export interface MessageDescriptor {
  name: string;
  field: FieldDescriptor[];
  nestedType: MessageDescriptor[];
}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH = 2;
const GROUP_START = 3;
const GROUP_END = 4;
const FIXED32 = 5;

/**
 * How deep unknown groups may nest (protobuf's default recursion limit, 100, as in
 * CodedInputStream's kDefaultRecursionLimit): a bound on what a request can make the check (and
 * protobufjs's recursive skipType after it) descend.
 */
export const MAX_GROUP_DEPTH = 100;

/**
 * How many fields one request may hold, counted as the check reads their tags (a packed repeated
 * number counts once): protobufjs builds a JavaScript value for each — an object per map entry
 * or message, a Buffer per `bytes_contents` entry — before any limit of the service looks at
 * them. A 14 MB ModelInfer of 7 million empty `bytes_contents` held the event loop 6.7 s and took
 * 1.7 GB (review44; a 1 GiB heap died of it), 900,000 `parameters` entries 4–6 s. A request's
 * envelope holds a few hundred fields (LIMITS.tensors inputs and outputs, their names, datatypes,
 * shapes and parameters, one raw content per input); the rest leaves room for parameters and
 * for rows sent as unpacked repeated numbers (a legal encoding no protobuf library writes by
 * default for proto3), as HTTP's JSON budget (http/json-budget.ts) leaves room around its rows.
 */
export const MAX_FIELDS = 65_536;

/**
 * How many values the packed repeated numbers of a request may hold: one per 4 bytes of the
 * request, as float32 rows hold (`fp32_contents`), or at least MIN_PACKED_VALUES. A varint takes
 * one byte, so 16 MB of packed `int_contents` decoded to 16 million numbers (2.4 s on the event
 * loop, review44), four times what the same bytes of float32 rows make.
 */
export const MIN_PACKED_VALUES = 4096;

/** What a request has made the check count so far (MAX_FIELDS, MIN_PACKED_VALUES). */
interface Counts {
  fields: number;
  packed: number;
  maxPacked: number;
  /** A message holds instances protobufjs does not merge as protobuf does (wire-merge.ts). */
  merge: boolean;
}

/** The wire type of each scalar type (the encoding guide's table). */
const SCALAR_WIRE: Record<string, number> = {
  TYPE_DOUBLE: FIXED64,
  TYPE_FLOAT: FIXED32,
  TYPE_INT64: VARINT,
  TYPE_UINT64: VARINT,
  TYPE_INT32: VARINT,
  TYPE_FIXED64: FIXED64,
  TYPE_FIXED32: FIXED32,
  TYPE_BOOL: VARINT,
  TYPE_STRING: LENGTH,
  TYPE_BYTES: LENGTH,
  TYPE_UINT32: VARINT,
  TYPE_ENUM: VARINT,
  TYPE_SFIXED32: FIXED32,
  TYPE_SFIXED64: FIXED64,
  TYPE_SINT32: VARINT,
  TYPE_SINT64: VARINT,
};

export interface FieldRule {
  name: string;
  wire: number;
  /** A repeated scalar number: may also come packed (length-delimited). */
  packable: boolean;
  utf8: boolean;
  /** Its values are read as 32-bit varints (varint32: int32, uint32, sint32, enum, bool). */
  varint32: boolean;
  /** A bool: its value must fit 32 bits (checkBool). */
  bool: boolean;
  message?: () => MessageRule;
  /** A message field that is not repeated: its instances on the wire merge (wire-merge.ts). */
  singularMessage: boolean;
  /** The index of the oneof it is a member of (in its message's declaration order). */
  oneof?: number;
}
export interface MessageRule {
  name: string;
  fields: Map<number, FieldRule>;
  /**
   * A map entry's message-typed value (its field number): protobufjs decodes an entry sent
   * without it as null and then fails on it with a JavaScript TypeError ("Cannot read properties
   * of null"), which reached the client as the message (gRPC attacker review of 2026-12-06). Such
   * an entry is refused by name instead.
   */
  mapValue?: number;
  /** Whether it has a singular message field or a oneof: their instances are followed. */
  followed: boolean;
}

/** The oneof a field of a message (its full name, `inference.InferParameter`) is a member of. */
export type OneofOf = (message: string, field: number) => number | undefined;

/**
 * The rules of message `name` of `pkg` (`inference`), from proto-loader's descriptors
 * (`definitions['inference.X'].type`). A field's type name is looked up as protoc does: in the
 * messages nested in the message and its parents first, then in the package.
 */
export function messageRule(
  name: string,
  pkg: string,
  topLevel: (name: string) => MessageDescriptor | undefined,
  /**
   * proto-loader's descriptors cannot say (they give every field `oneofIndex` 0, members or
   * not): proto.ts asks protobufjs. Without it no field is taken for a oneof's member.
   */
  oneofOf: OneofOf = () => undefined,
): MessageRule {
  const cache = new Map<MessageDescriptor, MessageRule>();
  const build = (descriptor: MessageDescriptor, scopes: MessageDescriptor[]): MessageRule => {
    const known = cache.get(descriptor);
    if (known) return known;
    const rule: MessageRule = { name: descriptor.name, fields: new Map(), followed: false };
    const fullName = [pkg, ...scopes.map((s) => s.name).reverse(), descriptor.name].join('.');
    const value = descriptor.field.find((f) => f.number === 2 && f.type === 'TYPE_MESSAGE');
    const options = (descriptor as { options?: { mapEntry?: boolean } | null }).options;
    if (options?.mapEntry === true && value) rule.mapValue = value.number;
    cache.set(descriptor, rule);
    const inner = [descriptor, ...scopes];
    for (const f of descriptor.field) {
      let message: (() => MessageRule) | undefined;
      if (f.type === 'TYPE_MESSAGE') {
        const target = resolve(f.typeName, inner);
        message = () => build(target.descriptor, target.scopes);
      } else if (!(f.type in SCALAR_WIRE)) {
        throw new Error(`${descriptor.name}.${f.name}: unsupported field type ${f.type}`);
      }
      const wire = message ? LENGTH : SCALAR_WIRE[f.type]!;
      const repeated = f.label === 'LABEL_REPEATED';
      const oneof = oneofOf(fullName, f.number);
      const singularMessage = message !== undefined && !repeated;
      if (singularMessage || oneof !== undefined) rule.followed = true;
      rule.fields.set(f.number, {
        name: f.name,
        wire,
        packable: repeated && wire !== LENGTH,
        utf8: f.type === 'TYPE_STRING',
        varint32: VARINT32_TYPES.has(f.type),
        bool: f.type === 'TYPE_BOOL',
        singularMessage,
        ...(message ? { message } : {}),
        ...(oneof !== undefined ? { oneof } : {}),
      });
    }
    return rule;
  };
  const resolve = (
    typeName: string,
    scopes: MessageDescriptor[],
  ): { descriptor: MessageDescriptor; scopes: MessageDescriptor[] } => {
    const bare = typeName.startsWith(`.${pkg}.`) ? typeName.slice(pkg.length + 2) : typeName;
    const parts = bare.split('.');
    /** `parts` nested in `from` (whose own parents are `parents`), or undefined. */
    const walk = (from: MessageDescriptor, parents: MessageDescriptor[], path: string[]) => {
      let current = from;
      let chain = parents;
      for (const part of path) {
        const next = current.nestedType.find((n) => n.name === part);
        if (!next) return undefined;
        chain = [current, ...chain];
        current = next;
      }
      return { descriptor: current, scopes: chain };
    };
    for (let i = 0; i < scopes.length; i++) {
      const found = walk(scopes[i]!, scopes.slice(i + 1), parts);
      if (found) return found;
    }
    const first = topLevel(parts[0]!);
    const found = first && walk(first, [], parts.slice(1));
    if (!found) throw new Error(`message type ${typeName} not found`);
    return found;
  };
  const top = topLevel(name);
  if (!top) throw new Error(`message type ${name} not found`);
  return build(top, []);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class WireError extends Error {}

/**
 * The types whose values protobufjs reads as 32-bit varints (Reader's int32, uint32, sint32, bool;
 * an enum as int32): varint32.
 */
const VARINT32_TYPES: ReadonlySet<string> = new Set([
  'TYPE_INT32',
  'TYPE_UINT32',
  'TYPE_SINT32',
  'TYPE_ENUM',
  'TYPE_BOOL',
]);

/**
 * varint, of a value the decoder reads as 32 bits: every tag and every length, and the values of
 * VARINT32_TYPES. protobufjs 7's Reader.uint32 (the one grpc-js's proto-loader decodes with) reads
 * such a varint as its first 1–5 bytes, or, when the fifth has its continuation bit, as 10 bytes
 * whatever the next five hold: one of 6–9 bytes, which this check reads whole, put the decoder 10
 * bytes on, inside what the check had read as another field's body — fields the check never saw
 * (unchecked UTF-8, map entries without their value, millions of fields past MAX_FIELDS) were
 * decoded (gRPC attacker review of 2026-12-06, finding 1). Refused here; 1–5 and 10 bytes are read
 * alike by both.
 */
function varint32(buf: Uint8Array, at: number, end: number, what: string): [number, number] {
  const read = varint(buf, at, end, what);
  const size = read[1] - at;
  if (size > 5 && size < 10)
    throw new WireError(
      `${what}: a ${size}-byte varint where a 32-bit one is read (1 to 5 bytes, or 10)`,
    );
  return read;
}

/**
 * varint32 of a value of `field`; a bool's at most 32 bits: protobufjs reads a bool as its low 32
 * bits not being 0, where protobuf reads any value but 0 as true, so 2^32 decoded false here and
 * true everywhere else (gRPC attacker review of 2026-12-06, second round).
 */
function varint32Of(
  field: FieldRule,
  buf: Uint8Array,
  at: number,
  end: number,
  what: string,
): [number, number] {
  const read = varint32(buf, at, end, what);
  if (field.bool && read[0] > 0xffffffff)
    throw new WireError(`${what}: a bool beyond 32 bits (0 or 1 is what protobuf writes)`);
  return read;
}

/** Reads a varint at `at` (at most 10 bytes, inside `end`): its value (exact below 2^53) and end. */
function varint(buf: Uint8Array, at: number, end: number, what: string): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (at + i >= end) throw new WireError(`${what}: the message ends inside a varint`);
    const byte = buf[at + i]!;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if (byte < 0x80) return [value, at + i + 1];
  }
  throw new WireError(`${what}: a varint longer than 10 bytes`);
}

const WIRE_NAMES = ['varint', 'fixed64', 'length-delimited', 'group start', 'group end', 'fixed32'];
const wireName = (wire: number): string => WIRE_NAMES[wire] ?? `wire type ${wire}`;

/** Reads the tag at `at` (of a field of `where`): its field number (≥ 1), wire type and end. */
export function readTag(
  buf: Uint8Array,
  at: number,
  end: number,
  where: string,
): [number, number, number] {
  const [tag, afterTag] = varint32(buf, at, end, where);
  // Field numbers are at most 2^29 - 1: a tag fits 32 bits.
  if (tag > 0xffffffff) throw new WireError(`${where}: a field tag beyond 32 bits`);
  const number = Math.floor(tag / 8);
  const wire = tag % 8;
  if (number === 0) throw new WireError(`${where}: field number 0`);
  if (wire > 5) throw new WireError(`${where} field ${number}: wire type ${wire} does not exist`);
  return [number, wire, afterTag];
}

/**
 * Skips an unknown group of field `number` whose start tag ends at `start`: its fields, read by
 * wire type alone, and groups nested in it, up to its end tag. Where the group ends.
 */
export function skipGroup(
  buf: Uint8Array,
  start: number,
  end: number,
  number: number,
  label: string,
  depth: number,
): number {
  if (depth > MAX_GROUP_DEPTH)
    throw new WireError(`${label}: groups nested more than ${MAX_GROUP_DEPTH} deep`);
  const where = `${label} (a group)`;
  let at = start;
  while (at < end) {
    const [inner, wire, afterTag] = readTag(buf, at, end, where);
    at = afterTag;
    if (wire === GROUP_END) {
      if (inner !== number) throw new WireError(`${where}: ended by the end tag of field ${inner}`);
      return at;
    }
    if (wire === GROUP_START) {
      at = skipGroup(buf, at, end, inner, `${where} field ${inner}`, depth + 1);
    } else {
      at = skipValue(buf, at, end, wire, `${where} field ${inner}`)[1];
    }
  }
  throw new WireError(`${where}: the message ends before the group's end tag`);
}

/** Skips a varint, fixed or length-delimited value at `at`: where its body starts and ends. */
export function skipValue(
  buf: Uint8Array,
  at: number,
  end: number,
  wire: number,
  label: string,
): [number, number] {
  if (wire === VARINT) return [at, varint(buf, at, end, label)[1]];
  if (wire === FIXED64 || wire === FIXED32) {
    const size = wire === FIXED64 ? 8 : 4;
    if (at + size > end)
      throw new WireError(`${label}: the message ends inside a ${size}-byte value`);
    return [at, at + size];
  }
  const [length, body] = varint32(buf, at, end, label);
  if (length > end - body) {
    throw new WireError(`${label}: announces ${length} bytes, the message has ${end - body} left`);
  }
  return [body, body + length];
}

/** Checks the fields of one message in buf[start, end). */
function checkMessage(
  buf: Uint8Array,
  start: number,
  end: number,
  rule: MessageRule,
  counts: Counts,
  /** The field this message is the value of, as messages name it (the top message: its name). */
  where = rule.name,
): void {
  let at = start;
  let valueSeen = false;
  // The singular message fields and the oneofs met so far (key: the field's number, a oneof's
  // -1 - index) and the member each last had: the first one in locals, more in a Map, as most
  // messages have one.
  let firstKey = 0;
  let firstMember = 0;
  let more: Map<number, number> | undefined;
  while (at < end) {
    const [number, wire, afterTag] = readTag(buf, at, end, rule.name);
    if (number === rule.mapValue) valueSeen = true;
    if (++counts.fields > MAX_FIELDS) {
      throw new WireError(
        `${rule.name}: more than ${MAX_FIELDS} fields in the request (entries of maps and of repeated fields count one each, a packed repeated number once): a request holds its tensors' data in raw_input_contents or packed contents`,
      );
    }
    const field = rule.fields.get(number);
    if (rule.followed && field && (field.singularMessage || field.oneof !== undefined)) {
      const key = field.oneof === undefined ? number : -1 - field.oneof;
      const prior = firstKey === key ? firstMember : firstKey === 0 ? undefined : more?.get(key);
      // A message met again merges; another member of a oneof replaces the one before, which
      // protobufjs keeps beside it. The same scalar member again is last-wins, as protobufjs reads it.
      if (prior !== undefined && (prior !== number || field.message)) counts.merge = true;
      if (firstKey === 0 || firstKey === key) {
        firstKey = key;
        firstMember = number;
      } else {
        more ??= new Map();
        more.set(key, number);
      }
    }
    const label = field
      ? `${rule.name}.${field.name} (field ${number})`
      : `${rule.name} field ${number}`;
    at = afterTag;
    if (wire === GROUP_START || wire === GROUP_END) {
      if (field) throw new WireError(`${label}: ${wireName(wire)} (proto2 groups are not read)`);
      if (wire === GROUP_END) throw new WireError(`${label}: a group end with no group started`);
      at = skipGroup(buf, at, end, number, label, 1);
      continue;
    }
    const packed = field?.packable === true && wire === LENGTH;
    if (field && wire !== field.wire && !packed) {
      throw new WireError(
        `${label}: sent as ${wireName(wire)}, its type is ${wireName(field.wire)}`,
      );
    }
    const [body, after] =
      field?.varint32 && wire === VARINT
        ? [at, varint32Of(field, buf, at, end, label)[1]]
        : skipValue(buf, at, end, wire, label);
    at = after;
    if (wire === LENGTH) {
      if (!field) continue;
      if (packed) {
        checkPacked(buf, body, at, field, label, counts);
      } else if (field.message) {
        checkMessage(buf, body, at, field.message(), counts, label);
      } else if (field.utf8) {
        try {
          utf8.decode(buf.subarray(body, at));
        } catch {
          throw new WireError(`${label}: not valid UTF-8`);
        }
      }
    }
  }
  if (rule.mapValue !== undefined && !valueSeen)
    throw new WireError(`${where}: a map entry without its value`);
}

/** A packed repeated scalar: whole values of the field's wire type, filling it exactly. */
function checkPacked(
  buf: Uint8Array,
  start: number,
  end: number,
  field: FieldRule,
  label: string,
  counts: Counts,
) {
  const tooMany = () =>
    new WireError(
      `${label}: more than ${counts.maxPacked} packed values in a request of ${buf.length} bytes (one per 4 bytes, at least ${MIN_PACKED_VALUES})`,
    );
  if (field.wire === VARINT) {
    for (let at = start; at < end; ) {
      if (++counts.packed > counts.maxPacked) throw tooMany();
      at = (
        field.varint32 ? varint32Of(field, buf, at, end, label) : varint(buf, at, end, label)
      )[1];
    }
    return;
  }
  const size = field.wire === FIXED64 ? 8 : 4;
  if ((end - start) % size !== 0)
    throw new WireError(`${label}: ${end - start} packed bytes are not whole ${size}-byte values`);
  counts.packed += (end - start) / size;
  if (counts.packed > counts.maxPacked) throw tooMany();
}

/** Why `buf` is no well-formed `rule` message, or undefined when it is one. */
export function wireProblem(buf: Uint8Array, rule: MessageRule): string | undefined {
  return checkWire(buf, rule).problem;
}

/**
 * What the check found: why `buf` is no well-formed `rule` message, or, for one that is,
 * whether a message in it holds instances protobufjs does not merge as protobuf does (a singular
 * message field sent twice, two members of a oneof): mergeInstances (wire-merge.ts) then
 * rewrites it before the decode.
 */
export function checkWire(
  buf: Uint8Array,
  rule: MessageRule,
): { problem: string; merge?: undefined } | { problem?: undefined; merge: boolean } {
  try {
    const maxPacked = Math.max(MIN_PACKED_VALUES, Math.ceil(buf.length / 4));
    const counts = { fields: 0, packed: 0, maxPacked, merge: false };
    checkMessage(buf, 0, buf.length, rule, counts);
    return { merge: counts.merge };
  } catch (e) {
    if (!(e instanceof WireError)) throw e;
    // gzip's magic bytes: a message compressed by a client that did not say so (its frame's
    // compressed flag without a grpc-encoding header is read as is by grpc-js), which the wire
    // error alone ("wire type 7 does not exist") would not tell (gRPC attacker review of
    // 2026-12-04, finding 5).
    return {
      problem:
        buf[0] === 0x1f && buf[1] === 0x8b
          ? `${e.message}; the message starts as gzip data does: a compressed message needs the grpc-encoding: gzip header`
          : e.message,
    };
  }
}
