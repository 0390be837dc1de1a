import { FLOAT32_MAX, roundsToFiniteFloat32 } from './input-shape.js';

/** Exact powers of ten as doubles (10^0 … 10^22 are all exactly representable). */
const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);
/** Most significant digits whose integer value is exact in a double (< 2^53). */
const MAX_FAST_DIGITS = 15;
/** Significant digits kept for a longer mantissa (the rest change it by less than 1e-18). */
const MAX_KEPT_DIGITS = 19;
/** Relative distance either side of an approximate value inside which the exact one lies. */
const APPROX_MARGIN = 2 ** -46;

const SPACE = 0x20;
const TAB = 0x09;
const CR = 0x0d;
const COMMA = 0x2c;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const LOWER_E = 0x65;
const UPPER_E = 0x45;

/**
 * Parses text[start, end) as a JSON array of exactly `width` numbers, each finite and within
 * float32's range, into out[offset …] — without allocating: the text is scanned by character
 * code and each number is built from its digits. The digits m and decimal exponent e give the
 * correctly rounded double m·10^e (or m / 10^−e) when m has at most 15 digits and |e| ≤ 22, as
 * both are exact doubles and IEEE division and multiplication round once (Clinger, "How to read
 * floating point numbers accurately", 1990: the fast path); a longer mantissa gives a double
 * close enough to decide its float32 in all but rare cases (below); other numbers go through
 * Number() of their text, which is what JSON.parse computes. The float32 stored is the one of the
 * double JSON.parse gives.
 *
 * Returns false, having written an unspecified prefix, for anything else — a syntax the fast scan
 * does not take, a wrong count, a value out of range — so that the caller parses the line the
 * slow way, which reports the exact error (or accepts what JSON allows and this does not).
 */
export function parseNumberRow(
  text: string,
  start: number,
  end: number,
  width: number,
  out: Float32Array,
  offset: number,
): boolean {
  let i = start;
  const skipSpace = () => {
    for (; i < end; i++) {
      const c = text.charCodeAt(i);
      if (c !== SPACE && c !== TAB && c !== CR) break;
    }
  };
  skipSpace();
  if (text.charCodeAt(i) !== OPEN) return false;
  i++;
  for (let k = 0; k < width; k++) {
    skipSpace();
    if (k > 0) {
      if (text.charCodeAt(i) !== COMMA) return false;
      i++;
      skipSpace();
    }
    const numberStart = i;
    let negative = false;
    if (text.charCodeAt(i) === MINUS) {
      negative = true;
      i++;
    }
    // Integer part: 0, or a non-zero digit and more digits (JSON has no leading zeros).
    let c = text.charCodeAt(i);
    if (!(c >= ZERO && c <= NINE)) return false;
    let mantissa = 0;
    let digits = 0;
    let exponent = 0;
    if (c === ZERO) {
      i++;
    } else {
      for (; i < end; i++) {
        c = text.charCodeAt(i);
        if (c < ZERO || c > NINE) break;
        if (digits < MAX_KEPT_DIGITS) {
          mantissa = mantissa * 10 + (c - ZERO);
          if (mantissa !== 0) digits++;
        } else {
          exponent++;
          digits++;
        }
      }
    }
    if (text.charCodeAt(i) === DOT) {
      i++;
      c = text.charCodeAt(i);
      if (!(c >= ZERO && c <= NINE)) return false;
      for (; i < end; i++) {
        c = text.charCodeAt(i);
        if (c < ZERO || c > NINE) break;
        if (digits < MAX_KEPT_DIGITS) {
          mantissa = mantissa * 10 + (c - ZERO);
          if (mantissa !== 0) digits++;
          exponent--;
        } else {
          digits++;
        }
      }
    }
    c = text.charCodeAt(i);
    if (c === LOWER_E || c === UPPER_E) {
      i++;
      let sign = 1;
      c = text.charCodeAt(i);
      if (c === MINUS || c === PLUS) {
        if (c === MINUS) sign = -1;
        i++;
      }
      c = text.charCodeAt(i);
      if (!(c >= ZERO && c <= NINE)) return false;
      let e = 0;
      for (; i < end; i++) {
        c = text.charCodeAt(i);
        if (c < ZERO || c > NINE) break;
        if (e < 100_000) e = e * 10 + (c - ZERO);
      }
      exponent += sign * e;
    }
    let value: number;
    if (exponent >= -22 && exponent <= 22) {
      value = exponent < 0 ? mantissa / POW10[-exponent]! : mantissa * POW10[exponent]!;
      if (negative) value = -value;
      // More than 15 digits (JavaScript's shortest form of most doubles has 16 or 17): the
      // mantissa and the quotient are within 2^-49 of the exact value (at most 19 digits kept:
      // at most four digit steps at or past 2^53, each rounding twice (×10, +digit), one rounding
      // for the scaling: about 9·2^-53 relative), so the correctly rounded double
      // lies within APPROX_MARGIN of it. Only its float32 is stored, and Math.fround is
      // monotonic: when both ends of that interval round to the same float32, so does the
      // exact double. Otherwise (a value within 2^-46 of a float32 rounding boundary, or of the
      // float32 range's end) the text is converted exactly.
      if (digits > MAX_FAST_DIGITS) {
        const low = Math.fround(value * (1 - APPROX_MARGIN));
        if (
          low === Math.fround(value * (1 + APPROX_MARGIN)) &&
          Math.abs(value) < FLOAT32_MAX * (1 - APPROX_MARGIN)
        )
          value = low;
        else value = Number(text.slice(numberStart, i));
      }
    } else {
      value = Number(text.slice(numberStart, i));
    }
    if (!roundsToFiniteFloat32(value)) return false;
    out[offset + k] = value;
  }
  skipSpace();
  if (text.charCodeAt(i) !== CLOSE) return false;
  i++;
  skipSpace();
  return i === end;
}
