/**
 * The allocation-free NDJSON row parser: the same float32 values as JSON.parse for every number
 * JSON allows, and false (the caller then parses the slow way) for anything it does not take.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FLOAT32_MAX, roundsToFiniteFloat32 } from '../../src/service/index.js';
import { parseNumberRow } from '../../src/service/number-row-parser.js';

function viaJson(line: string, width: number): Float32Array {
  return Float32Array.from(JSON.parse(line) as number[]).subarray(0, width);
}

function parsed(line: string, width: number): Float32Array | false {
  const out = new Float32Array(width);
  return parseNumberRow(line, 0, line.length, width, out, 0) ? out : false;
}

/** Ways a client writes a number: JS's shortest form, fixed and exponential notation. */
const written = fc
  .tuple(
    fc.double({ min: -FLOAT32_MAX, max: FLOAT32_MAX, noNaN: true }),
    fc.constantFrom('shortest', 'fixed', 'exponential', 'precision', 'upper'),
    fc.integer({ min: 0, max: 20 }),
  )
  .map(([v, form, digits]) => {
    switch (form) {
      case 'fixed':
        return Math.abs(v) < 1e21 ? v.toFixed(digits) : String(v);
      case 'exponential':
        return v.toExponential(digits).replace('e+', 'e');
      case 'precision':
        return v.toPrecision(Math.max(1, digits)).replace('e+', 'E+');
      case 'upper':
        return String(v).toUpperCase();
      default:
        return String(v);
    }
  })
  // What the upload accepts: a JSON number whose value is within float32's range (rounding a
  // value near the limit to fewer digits can leave it; both parsers refuse those).
  .filter((s) => {
    const v: unknown = JSON.parse(s);
    return typeof v === 'number' && roundsToFiniteFloat32(v);
  });

describe('parseNumberRow', () => {
  it('gives the float32 values JSON.parse gives, bit for bit', () => {
    fc.assert(
      fc.property(
        fc.array(written, { minLength: 1, maxLength: 12 }),
        fc.constantFrom('', ' ', '\t', ' \r'),
        (numbers, space) => {
          const line = `${space}[${numbers.join(`${space},${space}`)}]${space}`;
          const expected = viaJson(line, numbers.length);
          const actual = parsed(line, numbers.length);
          expect(actual).not.toBe(false);
          const a = new Uint32Array((actual as Float32Array).buffer);
          const e = new Uint32Array(expected.buffer);
          expect([...a]).toEqual([...e]);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('decides the float32 of long mantissas next to a float32 rounding boundary as JSON.parse does', () => {
    // Doubles at, just below and just above the midpoint of two neighbouring float32 values, in
    // their shortest form (16–17 digits) and with 18–20: where an approximate value could round
    // the other way, the parser must convert the text exactly.
    const f32 = new Float32Array(1);
    const bits = new Uint32Array(f32.buffer);
    const f64 = new Float64Array(1);
    const bits64 = new BigUint64Array(f64.buffer);
    fc.assert(
      fc.property(
        fc.float({ min: Math.fround(-3e38), max: Math.fround(3e38), noNaN: true }),
        fc.integer({ min: -3, max: 3 }),
        fc.integer({ min: 17, max: 20 }),
        (f, ulps, precision) => {
          f32[0] = f;
          bits[0]! += 1;
          const midpoint = (f + f32[0]!) / 2;
          f64[0] = midpoint;
          bits64[0]! += BigInt(ulps);
          const v = f64[0]!;
          if (!roundsToFiniteFloat32(v)) return;
          const line = `[${v}, ${v.toPrecision(precision)}]`;
          const expected = viaJson(line, 2);
          const actual = parsed(line, 2);
          expect(actual).not.toBe(false);
          expect([...new Uint32Array((actual as Float32Array).buffer)]).toEqual([
            ...new Uint32Array(expected.buffer),
          ]);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('takes long mantissas, tiny and huge exponents and -0 through the slow number path', () => {
    const line =
      '[0.1000000000000000055511151231257827, -0, 1e-320, 123456789012345678901234567890, 3.4028234e38, 7E-3, 0.000001]';
    expect(parsed(line, 7)).toEqual(viaJson(line, 7));
    expect(Object.is((parsed('[-0]', 1) as Float32Array)[0], -0)).toBe(true);
  });

  it('takes numbers above FLOAT32_MAX that round to it (3.4028235e38, as numpy prints it)', () => {
    const out = parsed('[3.4028235e38, -3.4028235677973362e38]', 2) as Float32Array;
    expect([...out]).toEqual([FLOAT32_MAX, -FLOAT32_MAX]);
    // Halfway to 2^128 rounds to Infinity (ties to even): declined.
    expect(parsed('[3.4028235677973366e38, 0]', 2)).toBe(false);
  });

  it('declines what it does not take, so that the caller reports it', () => {
    for (const line of [
      '',
      '   ',
      '[1, 2',
      '[1, 2] x',
      '[1, 2, 3]',
      '[1]',
      '[01, 2]',
      '[1., 2]',
      '[.5, 2]',
      '[+1, 2]',
      '[1e, 2]',
      '[NaN, 2]',
      '[Infinity, 2]',
      '["1", 2]',
      '[1e39, 2]',
      '[-3.5e38, 2]',
      '[1,, 2]',
      '{"a": 1}',
    ]) {
      expect(parsed(line, 2), line).toBe(false);
    }
  });

  it('reads only text[start, end)', () => {
    const text = 'xx[1.5, -2]\n[3, 4]\n';
    const out = new Float32Array(4);
    expect(parseNumberRow(text, 2, 11, 2, out, 0)).toBe(true);
    expect(parseNumberRow(text, 12, 18, 2, out, 2)).toBe(true);
    expect([...out]).toEqual([1.5, -2, 3, 4]);
  });
});
