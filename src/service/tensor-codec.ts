import { endianness } from 'node:os';
import { type ErrorLocation, NormserveError } from '../errors/index.js';
import { allFinite } from '../nn/index.js';
import { notANumberMessage } from './input-shape.js';
import { LIMITS } from './request-limits.js';

/**
 * Raw tensor bytes as the Open Inference Protocol lays them out, in its binary REST extension and
 * in gRPC's raw_input_contents/raw_output_contents alike: little-endian, row-major, no padding;
 * a BYTES element is a 4-byte little-endian length followed by its bytes.
 */
const LITTLE_ENDIAN = endianness() === 'LE';
export const FP32_BYTES = 4;

/**
 * Reads `bytes` as little-endian float32 values. The bytes may sit at any offset of their buffer
 * (a slice of a request body): aligned ones are viewed, others copied once. Every value must be
 * finite; errors name `where` and, for values, `where[i]` (up to LIMITS.errorLocations are listed).
 */
export function readFloat32(bytes: Uint8Array, where: string): Float32Array {
  if (bytes.byteLength % FP32_BYTES !== 0) {
    const message = `${bytes.byteLength} bytes is not a whole number of float32 values (4 bytes each)`;
    throw new NormserveError('INVALID_INPUT', `${where}: ${message}`, {
      errors: [{ path: where, message }],
    });
  }
  const count = bytes.byteLength / FP32_BYTES;
  let values: Float32Array;
  if (LITTLE_ENDIAN) {
    const aligned = bytes.byteOffset % FP32_BYTES === 0 ? bytes : new Uint8Array(bytes); // copy to realign
    values = new Float32Array(aligned.buffer, aligned.byteOffset, count);
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    values = new Float32Array(count);
    for (let i = 0; i < count; i++) values[i] = view.getFloat32(i * FP32_BYTES, true);
  }
  checkFinite(values, where);
  return values;
}

/** Every value must be finite (float32 bytes can hold NaN and ±Infinity; JSON cannot). */
export function checkFinite(values: Float32Array, where: string): void {
  if (allFinite(values)) return;
  let errors: ErrorLocation[] | undefined;
  for (let i = 0; i < values.length; i++) {
    // v - v is 0 for finite values and NaN for NaN and ±Infinity: one comparison per value.
    const v = values[i]!;
    if (v - v !== 0) {
      errors ??= [];
      errors.push({ path: `${where}[${i}]`, message: notANumberMessage(v) });
      if (errors.length >= LIMITS.errorLocations) break;
    }
  }
  if (errors) {
    throw new NormserveError('INVALID_INPUT', `${errors[0]!.path}: ${errors[0]!.message}`, {
      errors,
    });
  }
}

/** Float32 values as little-endian bytes (a view when the platform is little-endian). */
export function float32Bytes(values: Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  const out = Buffer.allocUnsafe(values.length * FP32_BYTES);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i]!, i * FP32_BYTES);
  return out;
}

/** A BYTES tensor: each element as its 4-byte little-endian length and its UTF-8 bytes. */
export function bytesTensor(values: readonly string[]): Buffer {
  const encoded = values.map((v) => Buffer.from(v, 'utf8'));
  const out = Buffer.allocUnsafe(encoded.reduce((n, b) => n + 4 + b.length, 0));
  let at = 0;
  for (const b of encoded) {
    out.writeUInt32LE(b.length, at);
    b.copy(out, at + 4);
    at += 4 + b.length;
  }
  return out;
}
