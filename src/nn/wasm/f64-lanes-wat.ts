import { locals } from './wat-text.js';

/**
 * WebAssembly text for float64 element-wise arithmetic that reproduces nn's plain-JavaScript loops
 * bit for bit: JavaScript computes `a * b + c` on float32 storage in float64 and rounds once when
 * it stores into a Float32Array; f64x2 and f64 instructions are the same IEEE 754 operations
 * (add, sub, mul, div, sqrt correctly rounded) and f32x4.demote_f64x2_zero / f32.demote_f64
 * round the same way as the store. So a kernel body written once, with the operations in the
 * order the JavaScript writes them, gives the same bits on two lanes (f64x2) and on one (f64, for
 * the elements left over) — on every runtime, since nothing here is relaxed or fused.
 */

export type Lane = 'f64' | 'f64x2';

/** What a kernel body writes its arithmetic with, for one lane type. */
export interface LaneText {
  lane: Lane;
  /** `(f64x2.name a b)` or `(f64.name a b)`. */
  op(name: 'add' | 'sub' | 'mul' | 'div' | 'sqrt', ...args: string[]): string;
  /** The current value of a lane variable (an element, a channel value or a temporary). */
  get(name: string): string;
  set(name: string, value: string): string;
  /** A float64 scalar parameter, splatted for f64x2. */
  k(name: string): string;
  /** x rounded to float32 and widened back: what reading a value just stored in a Float32Array gives. */
  f32(value: string): string;
}

export function laneText(lane: Lane): LaneText {
  const prefix = lane === 'f64' ? 's' : 'v';
  return {
    lane,
    op: (name, ...args) => `(${lane}.${name} ${args.join(' ')})`,
    get: (name) => `(local.get $${prefix}_${name})`,
    set: (name, value) => `(local.set $${prefix}_${name} ${value})`,
    k: (name) => `(local.get $${lane === 'f64' ? '' : 'k_'}${name})`,
    f32: (value) =>
      lane === 'f64'
        ? `(f64.promote_f32 (f32.demote_f64 ${value}))`
        : `(f64x2.promote_low_f32x4 (f32x4.demote_f64x2_zero ${value}))`,
  };
}

/** Lanes 2 and 3 of an f32x4, widened to f64x2 (lanes 0 and 1: f64x2.promote_low_f32x4). */
export const promoteHigh = (v: string): string =>
  `(f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15 ${v} ${v}))`;

/** Two f64x2 rounded to float32 and packed into one f32x4 (lo in lanes 0–1, hi in 2–3). */
export const demotePair = (lo: string, hi: string): string =>
  `(i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (f32x4.demote_f64x2_zero ${lo}) (f32x4.demote_f64x2_zero ${hi}))`;

/** Locals for the lane variables of both lane types and the splatted scalars. */
export const laneLocals = (vars: readonly string[], scalars: readonly string[]): string =>
  [
    locals('v128', ...vars.map((v) => `v_${v}`), ...scalars.map((s) => `k_${s}`)),
    locals('f64', ...vars.map((v) => `s_${v}`)),
  ].join(' ');

/** Sets the splatted copies of the scalar parameters. */
export const splatScalars = (scalars: readonly string[]): string =>
  scalars.map((s) => `(local.set $k_${s} (f64x2.splat (local.get $${s})))`).join(' ');

export interface ElementMap {
  /** Export name. */
  name: string;
  /** float32 arrays read element by element (pointer parameters $p_<name>), into lane variables. */
  inputs: readonly string[];
  /** float32 arrays written from the lane variable of the same name (may also be inputs). */
  outputs: readonly string[];
  /** float64 scalar parameters, after the count. */
  scalars: readonly string[];
  /** i32 parameters after the scalars (modes a body branches on). */
  flags?: readonly string[];
  /** Lane variables besides the arrays'. */
  temps?: readonly string[];
  body(t: LaneText): string;
}

/**
 * A function `name(p_<input>…, p_<output not read>…, count, scalars…, flags…)` applying `body` to
 * every element i < count: four at a time as two f64x2 halves, the rest one by one.
 */
export function elementMap(spec: ElementMap): string {
  const arrays = [...new Set([...spec.inputs, ...spec.outputs])];
  const vars = [...arrays, ...(spec.temps ?? [])];
  const vector = laneText('f64x2');
  const scalar = laneText('f64');
  const at = (a: string) => `(i32.add (local.get $p_${a}) (i32.shl (local.get $i) (i32.const 2)))`;
  return `
  (func $${spec.name} (export "${spec.name}")
      ${arrays.map((a) => `(param $p_${a} i32)`).join(' ')} (param $count i32)
      ${spec.scalars.map((s) => `(param $${s} f64)`).join(' ')}
      ${(spec.flags ?? []).map((f) => `(param $${f} i32)`).join(' ')}
    ${locals('i32', 'i', 'end4')}
    ${laneLocals(vars, spec.scalars)}
    ${locals('v128', ...spec.inputs.map((a) => `ld_${a}`), ...spec.outputs.map((a) => `lo_${a}`))}
    ${splatScalars(spec.scalars)}
    (local.set $end4 (i32.and (local.get $count) (i32.const -4)))
    (block $vd (loop $vl
      (br_if $vd (i32.ge_u (local.get $i) (local.get $end4)))
      ${spec.inputs.map((a) => `(local.set $ld_${a} (v128.load ${at(a)}))`).join(' ')}
      ${spec.inputs.map((a) => vector.set(a, `(f64x2.promote_low_f32x4 (local.get $ld_${a}))`)).join(' ')}
      ${spec.body(vector)}
      ${spec.outputs.map((a) => `(local.set $lo_${a} ${vector.get(a)})`).join(' ')}
      ${spec.inputs.map((a) => vector.set(a, promoteHigh(`(local.get $ld_${a})`))).join(' ')}
      ${spec.body(vector)}
      ${spec.outputs.map((a) => `(v128.store ${at(a)} ${demotePair(`(local.get $lo_${a})`, vector.get(a))})`).join(' ')}
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $vl)))
    (block $sd (loop $sl
      (br_if $sd (i32.ge_u (local.get $i) (local.get $count)))
      ${spec.inputs.map((a) => scalar.set(a, `(f64.promote_f32 (f32.load ${at(a)}))`)).join(' ')}
      ${spec.body(scalar)}
      ${spec.outputs.map((a) => `(f32.store ${at(a)} (f32.demote_f64 ${scalar.get(a)}))`).join(' ')}
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $sl))))`;
}
