/**
 * 16-bit float decoding. Every float16 and bfloat16 value is exactly representable as a float32,
 * so both conversions are exact (NaN payloads aside: JavaScript may canonicalize NaN).
 */

/** IEEE 754 binary16 bits → its value: subnormals, ±0, ±Infinity and NaN included. */
export function float16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24; // zero or subnormal
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (0x400 + mantissa) * 2 ** (exponent - 25);
}

const scratch = new DataView(new ArrayBuffer(4));

/** bfloat16 bits → its value: bfloat16 is the upper half of a float32. */
export function bfloat16BitsToNumber(bits: number): number {
  scratch.setUint32(0, (bits & 0xffff) << 16);
  return scratch.getFloat32(0);
}
