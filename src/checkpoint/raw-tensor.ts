import { NormserveError } from '../errors/index.js';
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

/**
 * The tensor's values as float32, read little-endian whatever the platform. F16 and BF16 convert
 * exactly; F64, I32 and I64 round to the nearest float32 (I64 goes through a double first).
 */
export function rawToFloat32(t: RawTensor): Float32Array {
  const n = checkedNumel(t);
  const view = viewOf(t.bytes);
  const out = new Float32Array(n);
  switch (t.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = Math.fround(view.getFloat64(i * 8, true));
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = float16BitsToNumber(view.getUint16(i * 2, true));
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) out[i] = bfloat16BitsToNumber(view.getUint16(i * 2, true));
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = view.getInt32(i * 4, true);
      break;
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(view.getBigInt64(i * 8, true));
      break;
  }
  return out;
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
