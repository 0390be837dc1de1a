import { z } from 'zod';
import {
  describeInput,
  echoJson,
  findDuplicateKey,
  NormserveError,
  printable,
  quote,
  quoteList,
  showKeyPath,
} from '../errors/index.js';
import { DTYPE_SIZES, isKnownUnsupportedDtype, SUPPORTED_DTYPES } from './dtype.js';
import type { RawTensor } from './raw-tensor.js';
import { headerExtent } from './safetensors-header-extent.js';

/** A parsed safetensors file. */
export interface SafetensorsFile {
  /** The `__metadata__` strings ({} if absent); a null-prototype object. */
  metadata: Record<string, string>;
  /** The tensors in order of data offset; their bytes are views into the file's bytes. */
  tensors: Map<string, RawTensor>;
}

/**
 * The limit on the JSON header, checked on the length prefix before the header is read. The
 * reference implementation allows 100,000,000 bytes (its MAX_HEADER_SIZE); a header of that
 * size made of millions of `__metadata__` keys held the server's one thread for 167 s and 3.5 GB
 * (review 9). A tensor entry takes about 100 bytes (`"12.body.3.running_var":{"dtype":"F32",
 * "shape":[512],"data_offsets":[…,…]}`; digits' 16 tensors take 1,216 bytes with metadata), so
 * 8 MiB holds some 40,000 tensors after the largest metadata allowed (1 MiB): 40 times
 * ResNet-152's 930 state entries. Files from the safetensors library are read unchanged: a
 * header above 8 MiB would take a model of more than 40,000 tensors.
 */
export const MAX_HEADER_BYTES = 8 * 1024 * 1024;

/**
 * Limits on `__metadata__`, checked on the header's text before it is parsed. The format's
 * metadata maps strings to strings (the library's `Dict[str, str]`): a handful of entries in
 * practice (`format: pt`; normserve writes two). 1,024 entries and 1 MiB of text leave room for
 * any tool's provenance strings while keeping a hostile header's parse to milliseconds.
 */
export const MAX_METADATA_ENTRIES = 1024;
export const MAX_METADATA_CHARS = 1024 * 1024;

/** A count or offset of the format: a non-negative integer a double holds exactly. */
const sizeSchema = z.number().int().nonnegative();

/**
 * Rule 4, one tensor entry: exactly dtype, shape and data_offsets; a dtype normserve reads; a
 * shape of sizes; data_offsets a pair [begin, end] with begin ≤ end. Parsed entry by entry (the
 * header's keys are walked by safetensorsLayout): zod's records skip a `__proto__` key, neither
 * checked nor kept, and the format allows any string as a tensor name. Issues become messages in
 * `entryProblem`, which names the tensor.
 */
const tensorEntrySchema = z.strictObject({
  dtype: z.enum(SUPPORTED_DTYPES),
  shape: z.array(sizeSchema),
  data_offsets: z.tuple([sizeSchema, sizeSchema]).refine(([begin, end]) => begin <= end),
});

const TENSOR_KEYS = Object.keys(tensorEntrySchema.shape);

/** Rule 3, one `__metadata__` value (its keys are walked for the same reason as the tensors'). */
const metadataValueSchema = z.string();

export interface SafetensorsEntry {
  name: string;
  tensor: Omit<RawTensor, 'bytes'>;
  begin: number;
  end: number;
}

type JsonObject = Record<string, unknown>;

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * What is wrong with the entry of tensor `name`, from the issues of its parse, in the order a
 * reader fixing it would want them: not an object; missing fields; extra fields; then dtype,
 * shape and data_offsets. Everything the file wrote is echoed through errors/quote.ts (a name,
 * a key or a shape of any length stays one short line in the log and the version's status).
 */
function entryProblem(name: string, info: unknown, issues: readonly z.core.$ZodIssue[]): string {
  const tensor = `tensor ${quote(name)}`;
  if (!isJsonObject(info)) {
    return `${tensor} must be an object with dtype, shape and data_offsets, got ${describeInput(info)}`;
  }
  const missing = TENSOR_KEYS.filter((k) => !Object.hasOwn(info, k));
  if (missing.length > 0) return `${tensor} is missing ${missing.join(', ')}`;
  const extra = issues.flatMap((i) => (i.code === 'unrecognized_keys' ? i.keys : []));
  if (extra.length > 0) {
    return `${tensor} has unexpected key(s) ${quoteList(extra)} (allowed: ${TENSOR_KEYS.join(', ')})`;
  }
  const field = (key: string) => issues.some((i) => i.path[0] === key);
  const { dtype, shape, data_offsets: offsets } = info;
  if (field('dtype')) {
    return typeof dtype === 'string' && isKnownUnsupportedDtype(dtype)
      ? `unsupported dtype ${dtype} for ${tensor}`
      : `unknown dtype ${describeInput(dtype)} for ${tensor}`;
  }
  if (field('shape')) {
    return `shape of ${tensor} must be an array of non-negative integers, got ${echoJson(shape)}`;
  }
  return `data_offsets of ${tensor} must be [begin, end] with integers 0 ≤ begin ≤ end, got ${echoJson(offsets)}`;
}

/**
 * The elements of a tensor of `shape` (BigInt: a product may pass 2^53), or undefined once the
 * product passes 2^53 with sizes left: no data_offsets span that many bytes, and multiplying on
 * grows the product some 16 digits a size — a shape of 100,000 sizes near 2^53 held the thread
 * 31 s (1.6 million digits), one of 400,000 (an 8 MiB header holds that) minutes.
 */
function elementCount(shape: readonly number[]): bigint | undefined {
  if (shape.includes(0)) return 0n;
  let numel = 1n;
  for (let i = 0; i < shape.length; i++) {
    if (numel > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    numel *= BigInt(shape[i]!);
  }
  return numel;
}

/** What the header of a safetensors file says: metadata, tensors and where the data starts. */
export interface SafetensorsLayout {
  metadata: Record<string, string>;
  entries: readonly SafetensorsEntry[];
  /** Offset of the data section in the file (8 + header length). */
  dataStart: number;
}

/**
 * What a reader knows before it parses the header: at most how many tensors the file may name
 * (from a model's config), and why (for the message). A header naming more is refused as
 * CHECKPOINT_MISMATCH from a count on its text, before JSON.parse builds its keys: 8 MiB of
 * keys cost 1.4 s to parse and walk, the count stops after `tensors` + 1.
 */
export interface SafetensorsExpectation {
  tensors?: number | undefined;
  by?: string | undefined;
}

/**
 * Rule 1, from the first 8 bytes and the file's size: the JSON header's length, which must fit
 * the limit and the file. A reader of a file calls this, reads that many more bytes and calls
 * safetensorsLayout, all before reading the data.
 */
export function safetensorsHeaderLength(
  first: Uint8Array,
  fileSize: number,
  fileName: string,
): number {
  const fail = (message: string) =>
    new NormserveError('SAFETENSORS_INVALID', `${fileName}: ${message}`);
  if (fileSize < 8 || first.length < 8) {
    throw fail(`file is ${fileSize} bytes, too short for the 8-byte header length`);
  }
  const view = new DataView(first.buffer, first.byteOffset, 8);
  const headerLength64 = view.getBigUint64(0, true);
  if (headerLength64 > BigInt(MAX_HEADER_BYTES)) {
    throw fail(`header length ${headerLength64} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  const headerLength = Number(headerLength64);
  if (8 + headerLength > fileSize) {
    throw fail(
      `header length ${headerLength} exceeds the ${fileSize - 8} bytes after the length prefix (file is ${fileSize} bytes)`,
    );
  }
  return headerLength;
}

/**
 * Parses a safetensors file (8-byte little-endian header length, JSON header, data), treating it
 * as hostile: every rule of the format is checked before any byte is used, and a violation throws
 * SAFETENSORS_INVALID with a message that starts with `fileName`.
 */
export function readSafetensors(bytes: Uint8Array, fileName: string): SafetensorsFile {
  const layout = safetensorsLayout(bytes, bytes.length, fileName);
  return safetensorsFromLayout(layout, bytes.subarray(layout.dataStart));
}

/**
 * The file a checked layout describes, given its data section (the bytes after the header, as
 * many as the layout's tensors span: safetensorsLayout made sure the file holds exactly that).
 */
export function safetensorsFromLayout(
  layout: SafetensorsLayout,
  data: Uint8Array,
): SafetensorsFile {
  const tensors = new Map<string, RawTensor>();
  for (const { name, tensor, begin, end } of layout.entries) {
    tensors.set(name, { ...tensor, bytes: data.subarray(begin, end) });
  }
  return { metadata: layout.metadata, tensors };
}

/**
 * Every rule of the format that the header and the file's size decide (all of them): `prefix`
 * holds at least the length prefix and the header; the data is not needed.
 */
export function safetensorsLayout(
  prefix: Uint8Array,
  fileSize: number,
  fileName: string,
  expect: SafetensorsExpectation = {},
): SafetensorsLayout {
  const fail = (message: string) =>
    new NormserveError('SAFETENSORS_INVALID', `${fileName}: ${message}`);

  // Rule 1: the header length prefix.
  const headerLength = safetensorsHeaderLength(prefix, fileSize, fileName);
  const dataStart = 8 + headerLength;
  if (prefix.length < dataStart) throw new Error(`${fileName}: the header was not read whole`);

  // Rule 2: a UTF-8 JSON object (checked on the bytes: TextDecoder would silently drop a BOM).
  const headerBytes = prefix.subarray(8, dataStart);
  if (headerBytes[0] !== 0x7b) {
    throw fail(
      headerLength === 0
        ? 'header is empty, expected a JSON object'
        : `header must start with '{', first byte is 0x${headerBytes[0]!.toString(16).padStart(2, '0')}`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw fail('header is not valid UTF-8');
  }
  // Rule 3's size, and the tensors a reader expects, before JSON.parse builds every key (one
  // linear scan that stops at the first limit passed).
  const extent = headerExtent(text, {
    metadataEntries: MAX_METADATA_ENTRIES,
    tensorEntries: expect.tensors ?? Number.POSITIVE_INFINITY,
  });
  if (extent.metadataEntries > MAX_METADATA_ENTRIES) {
    throw fail(`__metadata__ has more than the limit of ${MAX_METADATA_ENTRIES} entries`);
  }
  if (extent.metadataLength > MAX_METADATA_CHARS) {
    throw fail(
      `__metadata__ is ${extent.metadataLength} characters long, more than the limit of ${MAX_METADATA_CHARS}`,
    );
  }
  if (expect.tensors !== undefined && extent.tensorEntries > expect.tensors) {
    throw new NormserveError(
      'CHECKPOINT_MISMATCH',
      `${fileName}: the header names more than ${expect.tensors} tensors${expect.by === undefined ? '' : ` (${expect.by})`}`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw fail(
      `header is not valid JSON (${printable(e instanceof Error ? e.message : String(e))})`,
    );
  }
  if (!isJsonObject(header)) {
    throw fail(`header must be a JSON object, got ${describeInput(header)}`);
  }

  // Rule 8: unique names (and unique keys in every nested object).
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) {
    throw fail(
      duplicate.path.length === 0 && duplicate.key !== '__metadata__'
        ? `duplicate tensor name ${quote(duplicate.key)} in header`
        : `duplicate key ${quote(duplicate.key)} in ${duplicate.path.length === 0 ? 'header' : showKeyPath(duplicate.path)}`,
    );
  }

  // Rule 3: __metadata__ maps strings to strings.
  const metadata: Record<string, string> = Object.create(null);
  if (Object.hasOwn(header, '__metadata__')) {
    const raw = header['__metadata__'];
    if (!isJsonObject(raw)) {
      throw fail(
        `__metadata__ must be an object mapping strings to strings, got ${describeInput(raw)}`,
      );
    }
    for (const [key, value] of Object.entries(raw)) {
      const parsed = metadataValueSchema.safeParse(value);
      if (!parsed.success) {
        throw fail(
          `__metadata__ value of ${quote(key)} must be a string, got ${describeInput(value)}`,
        );
      }
      metadata[key] = parsed.data;
    }
  }

  // Rule 4 (tensorEntrySchema) and rule 5, the one rule across an entry's fields: its bytes are
  // exactly its elements' (BigInt: a shape's product may pass 2^53).
  const entries: SafetensorsEntry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const parsed = tensorEntrySchema.safeParse(info);
    if (!parsed.success) throw fail(entryProblem(name, info, parsed.error.issues));
    const {
      dtype,
      shape,
      data_offsets: [begin, end],
    } = parsed.data;
    const numel = elementCount(shape);
    const needed = numel === undefined ? undefined : numel * BigInt(DTYPE_SIZES[dtype]);
    if (BigInt(end - begin) !== needed) {
      throw fail(
        `tensor ${quote(name)} has data_offsets [${begin}, ${end}] spanning ${end - begin} bytes, but ${dtype} of shape ${echoJson(shape)} needs ${needed === undefined ? `more than ${Number.MAX_SAFE_INTEGER}` : needed} bytes${numel === undefined ? '' : ` (${numel} elements × ${DTYPE_SIZES[dtype]})`}`,
      );
    }
    // A JSON `-0` is a size zod lets through (-0 ≥ 0): kept as 0, so shapes compare equal.
    entries.push({ name, tensor: { dtype, shape: shape.map((d) => d + 0) }, begin, end });
  }

  // Rule 6: contiguous from 0, no gap, no overlap.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let previous: SafetensorsEntry | undefined;
  for (const entry of entries) {
    if (entry.begin > expected) {
      throw fail(
        previous === undefined
          ? `gap: the first tensor ${quote(entry.name)} begins at data offset ${entry.begin}, expected 0`
          : `gap of ${entry.begin - expected} bytes between tensor ${quote(previous.name)} (ends at ${previous.end}) and tensor ${quote(entry.name)} (begins at ${entry.begin})`,
      );
    }
    if (entry.begin < expected) {
      throw fail(
        `overlap: tensor ${quote(entry.name)} [${entry.begin}, ${entry.end}] overlaps tensor ${quote(previous!.name)} [${previous!.begin}, ${previous!.end}]`,
      );
    }
    expected = entry.end;
    previous = entry;
  }

  // Rule 7: the data section ends exactly at the last tensor.
  const dataLength = fileSize - dataStart;
  if (expected > dataLength) {
    throw fail(
      `truncated: tensors need ${expected} bytes of data${previous === undefined ? '' : ` (last tensor ${quote(previous.name)} ends at ${previous.end})`}, but only ${dataLength} bytes follow the header`,
    );
  }
  if (expected < dataLength) {
    throw fail(
      `${dataLength - expected} trailing bytes after the last tensor (tensors need ${expected} bytes of data, ${dataLength} follow the header)`,
    );
  }
  return { metadata, entries, dataStart };
}
