import { SELU_ALPHA, SELU_SCALE } from '../activation-functions.js';
import { ERF_COEFFICIENTS } from '../erf.js';
import { ACTIVATION_CODES } from './activation-codes.js';
import { locals, splat } from './wat-text.js';

/**
 * The activations of nn/activation-functions.ts on f32x4 vectors, to float32 accuracy (a few ulps;
 * test/inference/wasm-math.test.ts measures the error against the float64 functions on a dense grid
 * and the special values). Written with separate multiplies and adds (never relaxed FMA) so they
 * give the same bits on every runtime. NaN in gives NaN out.
 */

const mul = (a: string, b: string) => `(f32x4.mul ${a} ${b})`;
const add = (a: string, b: string) => `(f32x4.add ${a} ${b})`;
const get = (name: string) => `(local.get $${name})`;

/** Horner's rule: c[0]·x^(n−1) + … + c[n−1], coefficients given as constants or per-lane expressions. */
const horner = (x: string, coefficients: readonly (number | string)[]): string => {
  const c = (v: number | string) => (typeof v === 'number' ? splat(v) : v);
  let acc = c(coefficients[0]!);
  for (const k of coefficients.slice(1)) acc = add(mul(acc, x), c(k));
  return acc;
};

/**
 * exp(x), Cephes' expf: x = n·ln2 + r with ln2 split in two (C1 + C2) so n·C1 is exact,
 * e^r by a degree-6 polynomial (error ≤ 1 ulp), 2^n built in the exponent bits. Arguments are
 * clamped to [ln(FLT_MIN), 88.376]: below, the result is flushed to 0 (the callers only ever need
 * e^x ≤ 1 scaled by something of order 1, where 1e-38 is nothing).
 */
const exp = `
  (func $exp (param $x v128) (result v128)
    ${locals('v128', 'fx', 'z', 'under')}
    (local.set $under (f32x4.lt (local.get $x) ${splat(-87.33654)}))
    (local.set $x (f32x4.min (f32x4.max (local.get $x) ${splat(-87.33654)}) ${splat(88.3762626647949)}))
    (local.set $fx (f32x4.floor ${add(mul(get('x'), splat(Math.LOG2E)), splat(0.5))}))
    (local.set $x (f32x4.sub (f32x4.sub (local.get $x) ${mul(get('fx'), splat(0.693359375))})
      ${mul(get('fx'), splat(-2.1219444e-4))}))
    (local.set $z ${mul(get('x'), get('x'))})
    (v128.andnot
      ${mul(
        add(
          add(
            mul(
              horner(
                get('x'),
                [
                  1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
                  5.0000001201e-1,
                ],
              ),
              get('z'),
            ),
            get('x'),
          ),
          splat(1),
        ),
        `(i32x4.shl (i32x4.add (i32x4.trunc_sat_f32x4_s (local.get $fx)) (v128.const i32x4 127 127 127 127)) (i32.const 23))`,
      )}
      (local.get $under)))`;

/**
 * eˣ − 1 for x ≤ 0 (SELU's negative branch): the Taylor series to x⁸ for x > −½ (the first term
 * left out is < 2e-8 of the result there), e^x − 1 below, where it loses no digits.
 */
const expm1 = `
  (func $expm1_nonpos (param $x v128) (result v128)
    (v128.bitselect
      ${add(
        mul(
          horner(get('x'), [1 / 40320, 1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5]),
          mul(get('x'), get('x')),
        ),
        get('x'),
      )}
      (f32x4.sub (call $exp (local.get $x)) ${splat(1)})
      (f32x4.gt (local.get $x) ${splat(-0.5)})))`;

const SIGN = '(v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000)';

/**
 * tanh(x): Cephes' tanhf polynomial x + x³·P(x²) for |x| < 0.625, else (1 − e)/(1 + e) with
 * e = e^(−2|x|); either with x's sign bit or'ed in (no cancellation: e ≤ 0.29 there), so that
 * tanh(−0) is −0 as Math.tanh and PyTorch give it (x³·P + x is +0 + −0 = +0 there).
 */
const tanh = `
  (func $tanh (param $x v128) (result v128)
    ${locals('v128', 's', 'e')}
    (local.set $s ${mul(get('x'), get('x'))})
    (local.set $e (call $exp (f32x4.mul (f32x4.abs (local.get $x)) ${splat(-2)})))
    (v128.or (v128.and (local.get $x) ${SIGN}) (v128.bitselect
      ${add(
        mul(
          mul(
            horner(
              get('s'),
              [
                -5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
                -3.33332819422e-1,
              ],
            ),
            get('s'),
          ),
          get('x'),
        ),
        get('x'),
      )}
      (f32x4.div (f32x4.sub ${splat(1)} (local.get $e)) (f32x4.add ${splat(1)} (local.get $e)))
      (f32x4.lt (f32x4.abs (local.get $x)) ${splat(0.625)}))))`;

/** σ(x) = 1/(1 + e^−x) for x ≥ 0 and e^x/(1 + e^x) below, as nn's sigmoid: e^−|x| never overflows. */
const sigmoid = `
  (func $sigmoid (param $x v128) (result v128)
    ${locals('v128', 'e', 's')}
    (local.set $e (call $exp (f32x4.neg (f32x4.abs (local.get $x)))))
    (local.set $s (f32x4.div ${splat(1)} (f32x4.add ${splat(1)} (local.get $e))))
    (v128.bitselect (local.get $s) ${mul(get('e'), get('s'))}
      (f32x4.ge (local.get $x) ${splat(0)})))`;

/** SELU: scale·x for x > 0, scale·α·(eˣ − 1) otherwise. */
const selu = `
  (func $selu (param $x v128) (result v128)
    (v128.bitselect
      ${mul(get('x'), splat(SELU_SCALE))}
      ${mul(`(call $expm1_nonpos (f32x4.min (local.get $x) ${splat(0)}))`, splat(SELU_SCALE * SELU_ALPHA))}
      (f32x4.gt (local.get $x) ${splat(0)})))`;

/**
 * GELU with approximate='tanh': 0.5·x·(1 + tanh(u)) with u = √(2/π)·(x + 0.044715·x³), computed as
 * x·σ(2u) — the same function, since 1 + tanh(u) = 2·σ(2u) — which keeps the far negative tail's
 * digits that 1 + tanh(u) would cancel.
 */
const geluTanh = `
  (func $gelu_tanh (param $x v128) (result v128)
    ${mul(
      get('x'),
      `(call $sigmoid ${mul(
        add(mul(mul(mul(get('x'), get('x')), get('x')), splat(0.044715)), get('x')),
        splat(2 * Math.sqrt(2 / Math.PI)),
      )})`,
    )})`;

/** fdlibm's erf coefficients (nn/erf.ts), highest power first for Horner's rule. */
const desc = (c: readonly number[]) => [...c].reverse();
const E = ERF_COEFFICIENTS;
const [PP, QQ, PA, QA, RA, SA] = [E.pp, E.qq, E.pa, E.qa, E.ra, E.sa].map(desc) as number[][];
/** rb and sb have one term fewer than ra and sa: padded with zero high-order terms. */
const RB = desc([...E.rb, 0]);
const SB = desc([...E.sb, 0]);
const ERX = E.erx;

/** Per lane: the RA/SA coefficient where $near, else RB/SB's. */
const pick = (a: readonly number[], b: readonly number[]) =>
  a.map((x, i) => `(v128.bitselect ${splat(x)} ${splat(b[i]!)} (local.get $near))`);

/**
 * Exact GELU: 0.5·x·(1 + erf(z)), z = x/√2, with 1 + erf(z) taken from fdlibm's ranges so that no
 * digits cancel: |z| < 0.84375: 1 ± (|z| + |z|·P/Q); < 1.25: 1 ± (erx + P/Q); beyond, erfc(|z|) =
 * e^(−z² − 0.5625 + R/S)/|z|, which gives 2 − erfc for z > 0 and erfc itself for z < 0 — the far
 * negative tail to full relative precision. There e^(−z²) is as sensitive as 2z² times the error
 * of z², so z² = x²/2 is formed exactly as h²/2 + l·(h + l/2), with h = |x| rounded to 11
 * significant bits (h² and h²/2 + 0.5625 are exact in float32) and l = |x| − h (fdlibm's trick,
 * applied to x rather than to the rounded x/√2).
 */
const gelu = `
  (func $gelu (param $x v128) (result v128)
    ${locals('v128', 'ax', 'az', 'zz', 's', 'y', 'pq', 'a', 'plus', 'minus', 'xc', 'zc', 't', 'h', 'l', 'c', 'near', 'small', 'tail')}
    (local.set $ax (f32x4.abs (local.get $x)))
    (local.set $az (f32x4.mul (local.get $ax) ${splat(Math.SQRT1_2)}))
    (local.set $zz ${mul(get('az'), get('az'))})
    (local.set $s (f32x4.sub (local.get $az) ${splat(1)}))
    ;; |z| < 0.84375: erf = |z| + |z|·y; 1 − erf as fdlibm's erfc forms it (no cancellation)
    (local.set $y (f32x4.div ${horner(get('zz'), PP!)} ${horner(get('zz'), QQ!)}))
    (local.set $pq (f32x4.div ${horner(get('s'), PA!)} ${horner(get('s'), QA!)}))
    (local.set $a (f32x4.lt (local.get $az) ${splat(0.84375)}))
    (local.set $plus (v128.bitselect
      ${add(splat(1), add(get('az'), mul(get('az'), get('y'))))}
      ${add(splat(1 + ERX), get('pq'))}
      (local.get $a)))
    (local.set $minus (v128.bitselect
      (v128.bitselect
        (f32x4.sub ${splat(1)} ${add(get('az'), mul(get('az'), get('y')))})
        (f32x4.sub ${splat(0.5)} ${add(mul(get('az'), get('y')), `(f32x4.sub (local.get $az) ${splat(0.5)})`)})
        (f32x4.lt (local.get $az) ${splat(0.25)}))
      ;; 0.84375 ≤ |z| < 1.25: erf = erx + P/Q, and 1 − erx is exact
      (f32x4.sub ${splat(1 - ERX)} (local.get $pq))
      (local.get $a)))
    ;; erfc(z) for |z| ≥ 1.25, |z| capped at 10 (erfc(10) < 1e-44)
    (local.set $xc (f32x4.min (local.get $ax) ${splat(10 * Math.SQRT2)}))
    (local.set $zc (f32x4.mul (local.get $xc) ${splat(Math.SQRT1_2)}))
    (local.set $t (f32x4.div ${splat(1)} ${mul(get('zc'), get('zc'))}))
    (local.set $near (f32x4.lt (local.get $zc) ${splat(1 / 0.35)}))
    (local.set $h (v128.and (local.get $xc) (v128.const i32x4 0xffffe000 0xffffe000 0xffffe000 0xffffe000)))
    (local.set $l (f32x4.sub (local.get $xc) (local.get $h)))
    (local.set $c (f32x4.div
      (f32x4.mul
        (call $exp (f32x4.sub (f32x4.neg ${mul(mul(get('h'), get('h')), splat(0.5))}) ${splat(0.5625)}))
        (call $exp (f32x4.sub
          (f32x4.div ${horner(get('t'), pick(RA!, RB))} ${horner(get('t'), pick(SA!, SB))})
          ${mul(get('l'), add(get('h'), mul(get('l'), splat(0.5))))})))
      (local.get $zc)))
    (local.set $small (f32x4.lt (local.get $az) ${splat(1.25)}))
    (local.set $tail (v128.bitselect
      (v128.bitselect (local.get $plus) (f32x4.sub ${splat(2)} (local.get $c)) (local.get $small))
      (v128.bitselect (local.get $minus) (local.get $c) (local.get $small))
      (f32x4.ge (local.get $x) ${splat(0)})))
    ;; + 0: gelu(−0) is +0, as PyTorch's (oneDNN's gelu_erf); nn's gelu adds it too
    (f32x4.add ${mul(mul(get('x'), splat(0.5)), get('tail'))} ${splat(0)}))`;

/** act(v, code, slope): the activation with code `code` (kernels.ts's codes). */
function activate(): string {
  const body: Record<number, string> = {
    [ACTIVATION_CODES.none]: '(local.get $v)',
    // pmax(v, 0) is v < 0 ? 0 : v: torch.relu's −0 stays −0 and NaN stays NaN (f32x4.max gives +0).
    [ACTIVATION_CODES.relu]: `(f32x4.pmax (local.get $v) ${splat(0)})`,
    [ACTIVATION_CODES.leaky_relu]: `(v128.bitselect (local.get $v)
      (f32x4.mul (local.get $v) (f32x4.splat (local.get $slope))) (f32x4.gt (local.get $v) ${splat(0)}))`,
    [ACTIVATION_CODES.gelu]: '(call $gelu (local.get $v))',
    [ACTIVATION_CODES.gelu_tanh]: '(call $gelu_tanh (local.get $v))',
    [ACTIVATION_CODES.tanh]: '(call $tanh (local.get $v))',
    [ACTIVATION_CODES.sigmoid]: '(call $sigmoid (local.get $v))',
    [ACTIVATION_CODES.selu]: '(call $selu (local.get $v))',
  };
  const codes = Object.keys(body)
    .map(Number)
    .sort((a, b) => a - b);
  if (codes.some((c, i) => c !== i)) throw new Error('activation codes must be 0…n−1');
  let text = `(br_table ${codes.map((c) => `$a${c}`).join(' ')} (local.get $code))`;
  // Block $aC ends where code C's activation is computed (br_table jumps to the end of block C).
  for (const c of codes.slice(0, -1)) text = `(block $a${c} ${text}) (return ${body[c]})`;
  const last = codes.at(-1)!;
  return `
  (func $act (param $v v128) (param $code i32) (param $slope f32) (result v128)
    (block $a${last} ${text}) ${body[last]})`;
}

/** $exp alone: every engine variant has it (softmax-wat.ts); the rest of vectorMathWat calls it. */
export function expWat(): string {
  return exp;
}

/** The activations' vector math ($exp comes apart, from expWat). */
export function vectorMathWat(): string {
  return [expm1, tanh, sigmoid, selu, geluTanh, gelu, activate()].join('\n');
}
