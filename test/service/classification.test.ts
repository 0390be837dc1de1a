/**
 * The classification extension's strings (service/classification.ts): the value as C++'s
 * std::to_string(float) writes it (printf "%f": six decimals, ties to even, plain notation), the
 * classes of each row highest first, equal values by index.
 */
import { describe, expect, it } from 'vitest';
import { classifiedTensor, exactFixed6, stdToString } from '../../src/service/classification.js';

describe('stdToString: printf "%f" of a float', () => {
  it('writes what printf writes', () => {
    // Measured with: python3 -c "import struct; x=struct.unpack('f',struct.pack('f',X))[0]; print('%f' % x)"
    // (Python's "%f" rounds the exact binary value, ties to even, as glibc's printf does.)
    const measured: [number, string][] = [
      [0.0078125, '0.007812'], // a tie: toFixed(6) says 0.007813
      [0.0234375, '0.023438'],
      [-0.0078125, '-0.007812'],
      [123456.7890625, '123456.789062'],
      [-0, '-0.000000'],
      [Math.fround(1e30), '1000000015047466219876688855040.000000'],
      [3.4028234663852886e38, '340282346638528859811704183484516925440.000000'],
      [Math.fround(0.1), '0.100000'],
      [Math.fround(3.3), '3.300000'],
      [1e-7, '0.000000'],
      [-1e-7, '-0.000000'],
      [Math.fround(2.5e-7), '0.000000'],
      [Math.fround(0.9999995), '1.000000'],
      [Math.fround(-42.4242), '-42.424198'],
      [3 * 2 ** -20, '0.000003'],
      [1.5, '1.500000'],
    ];
    for (const [x, text] of measured) expect(stdToString(x), String(x)).toBe(text);
  });

  it('the fast path (toFixed) agrees with the exact expansion on seeded float32 values', () => {
    let seed = 12345;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const bits = new Uint32Array(1);
    const asFloat = new Float32Array(bits.buffer);
    let checked = 0;
    for (let i = 0; i < 20_000; i++) {
      bits[0] = Math.floor(next() * 2 ** 32);
      const x = asFloat[0]!;
      if (!Number.isFinite(x)) continue;
      expect(stdToString(x), String(x)).toBe(exactFixed6(x));
      checked++;
    }
    // Values of every size near 1: ties (odd multiples of 1/128) among them.
    for (let j = -2000; j <= 2000; j++) {
      const x = j / 128;
      expect(stdToString(x), String(x)).toBe(exactFixed6(x));
      checked++;
    }
    expect(checked).toBeGreaterThan(20_000);
    // A tie rounds to the even neighbour, whichever side it lies on.
    expect(exactFixed6(1 / 128)).toBe('0.007812');
    expect(exactFixed6(3 / 128)).toBe('0.023438');
  });
});

describe('classifiedTensor', () => {
  const tensor = (values: number[], width: number) => ({
    name: 'logits',
    datatype: 'FP32' as const,
    shape: [values.length / width, width] as [number, number],
    values: Float32Array.from(values),
  });

  it("answers the protocol's example: [1.1, 3.3, 0.5, 2.4] with count 2", () => {
    // docs/protocol/extension_classification.md: "3.3:1", "2.4:3" (Triton writes std::to_string).
    const out = classifiedTensor(tensor([1.1, 3.3, 0.5, 2.4], 4), 2, ['a', 'b', 'c', 'd']);
    expect(out).toEqual({
      name: 'logits',
      datatype: 'BYTES',
      shape: [1, 2],
      values: ['3.300000:1:b', '2.400000:3:d'],
    });
  });

  it('each row on its own, highest first, equal values by index, a count past the classes gives all', () => {
    const out = classifiedTensor(tensor([2, 5, 5, -1, 0, -0, 7, 0], 4), 9, ['w', 'x', 'y', 'z']);
    expect(out.shape).toEqual([2, 4]);
    expect(out.values).toEqual([
      '5.000000:1:x',
      '5.000000:2:y',
      '2.000000:0:w',
      '-1.000000:3:z',
      '7.000000:2:y',
      '0.000000:0:w',
      '-0.000000:1:x',
      '0.000000:3:z',
    ]);
  });
});
