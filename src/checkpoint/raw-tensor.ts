import { NormserveError } from '../errors/index.js';
import { finish, SLICE_VALUES, type Sliced } from '../nn/slices.js';
import { numelOf } from '../nn/tensor.js';
import { DTYPE_SIZES, type SafetensorsDtype } from './dtype.js';
import { bfloat16BitsToNumber, float16BitsToNumber } from './half-float.js';

/** One tensor as stored in a safetensors file: row-major little-endian element bytes. */
export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: Uint8Array;
}

/** numel(shape) × element size, or a RangeError if the bytes do not match (a caller's bug). */
function checkedNumel(t: RawTensor): number {
  const numel = numelOf(t.shape);
  const expected = numel * DTYPE_SIZES[t.dtype];
  if (t.bytes.length !== expected) {
    throw new RangeError(
      `${t.dtype} tensor of shape [${t.shape}] needs ${expected} bytes, has ${t.bytes.length}`,
    );
  }
  return numel;
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Whether this host stores numbers little-endian, as safetensors does (every common one). */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The tensor's values as float32, read little-endian whatever the platform. F16 and BF16 convert
 * exactly; F64, I32 and I64 round to the nearest float32 (I64 goes through a double first).
 */
export function rawToFloat32(t: RawTensor): Float32Array {
  return finish(rawToFloat32Sliced(t));
}

/** rawToFloat32 in slices of SLICE_VALUES values (nn/slices.ts), yielding after each. */
export function* rawToFloat32Sliced(t: RawTensor): Sliced<Float32Array> {
  const n = checkedNumel(t);
  const out = new Float32Array(n);
  for (let from = 0; from < n; from += SLICE_VALUES) {
    decodeRange(t, out, from, Math.min(n, from + SLICE_VALUES));
    yield;
  }
  return out;
}

/** Decodes values [from, to) of `t` into `out`. */
function decodeRange(t: RawTensor, out: Float32Array, from: number, to: number): void {
  const view = viewOf(t.bytes);
  switch (t.dtype) {
    case 'F32':
      if (LITTLE_ENDIAN_HOST) {
        // The bytes as they are (a copy, whatever the file's alignment): the values getFloat32
        // reads, NaN payloads aside, and a NaN is refused wherever a checkpoint is loaded.
        new Uint8Array(out.buffer, out.byteOffset + from * 4, (to - from) * 4).set(
          t.bytes.subarray(from * 4, to * 4),
        );
      } else {
        for (let i = from; i < to; i++) out[i] = view.getFloat32(i * 4, true);
      }
      break;
    case 'F64':
      for (let i = from; i < to; i++) out[i] = Math.fround(view.getFloat64(i * 8, true));
      break;
    case 'F16':
      for (let i = from; i < to; i++) out[i] = float16BitsToNumber(view.getUint16(i * 2, true));
      break;
    case 'BF16':
      for (let i = from; i < to; i++) out[i] = bfloat16BitsToNumber(view.getUint16(i * 2, true));
      break;
    case 'I32':
      for (let i = from; i < to; i++) out[i] = view.getInt32(i * 4, true);
      break;
    case 'I64':
      for (let i = from; i < to; i++) out[i] = Number(view.getBigInt64(i * 8, true));
      break;
  }
}

/** The value of an integer scalar: an I64 or I32 tensor of shape [] or [1]. */
export function rawToBigInt(t: RawTensor, name: string, fileName: string): bigint {
  const isInteger = t.dtype === 'I64' || t.dtype === 'I32';
  const isScalar = t.shape.length === 0 || (t.shape.length === 1 && t.shape[0] === 1);
  if (!isInteger || !isScalar) {
    throw new NormserveError(
      'SAFETENSORS_INVALID',
      `${fileName}: tensor "${name}" must be an integer scalar (I64 or I32 of shape [] or [1]), got ${t.dtype} of shape [${t.shape}]`,
    );
  }
  checkedNumel(t);
  const view = viewOf(t.bytes);
  return t.dtype === 'I64' ? view.getBigInt64(0, true) : BigInt(view.getInt32(0, true));
}
