import { NormserveError } from '../errors/index.js';
import { numelOf } from '../nn/tensor.js';
import { DTYPE_SIZES, isSupportedDtype } from './dtype.js';
import type { RawTensor } from './raw-tensor.js';
import { MAX_HEADER_BYTES } from './safetensors-reader.js';

function fail(message: string): NormserveError {
  return new NormserveError('SAFETENSORS_INVALID', `cannot write safetensors: ${message}`);
}

/**
 * Serializes tensors as the reference implementation lays them out: an 8-byte little-endian
 * header length, a compact JSON header (`__metadata__` first if given, with its keys sorted, then
 * the tensors in the given order) padded with spaces to a multiple of 8 bytes so the data is
 * 8-byte aligned, then each tensor's bytes back to back in the same order. Deterministic: the same
 * input always gives the same bytes.
 */
export function writeSafetensors(
  entries: Iterable<[string, RawTensor]>,
  metadata?: Record<string, string>,
): Uint8Array {
  const fields: string[] = [];
  if (metadata !== undefined) {
    const pairs = Object.keys(metadata)
      .sort()
      .map((key) => {
        const value: unknown = metadata[key];
        if (typeof value !== 'string') throw fail(`__metadata__ value of "${key}" is not a string`);
        return `${JSON.stringify(key)}:${JSON.stringify(value)}`;
      });
    fields.push(`"__metadata__":{${pairs.join(',')}}`);
  }

  const names = new Set<string>();
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of entries) {
    if (name === '__metadata__') throw fail('"__metadata__" is reserved and cannot name a tensor');
    if (names.has(name)) throw fail(`duplicate tensor name "${name}"`);
    names.add(name);
    if (!isSupportedDtype(tensor.dtype)) {
      throw fail(`unsupported dtype ${String(tensor.dtype)} for tensor "${name}"`);
    }
    if (!tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw fail(`invalid shape [${tensor.shape}] for tensor "${name}"`);
    }
    const length = numelOf(tensor.shape) * DTYPE_SIZES[tensor.dtype];
    if (tensor.bytes.length !== length) {
      throw fail(
        `tensor "${name}" (${tensor.dtype} of shape [${tensor.shape}]) needs ${length} bytes, has ${tensor.bytes.length}`,
      );
    }
    fields.push(
      `${JSON.stringify(name)}:{"dtype":"${tensor.dtype}","shape":[${tensor.shape.join(',')}],"data_offsets":[${offset},${offset + length}]}`,
    );
    chunks.push(tensor.bytes);
    offset += length;
  }

  const header = new TextEncoder().encode(`{${fields.join(',')}}`);
  const paddedLength = Math.ceil(header.length / 8) * 8;
  // What readSafetensors would refuse is not written (a publish fails, not every later load).
  if (paddedLength > MAX_HEADER_BYTES) {
    throw fail(`header of ${paddedLength} bytes exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  }
  const out = new Uint8Array(8 + paddedLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(paddedLength), true);
  out.set(header, 8);
  out.fill(0x20, 8 + header.length, 8 + paddedLength);
  let position = 8 + paddedLength;
  for (const chunk of chunks) {
    out.set(chunk, position);
    position += chunk.length;
  }
  return out;
}
