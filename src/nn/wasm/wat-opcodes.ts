/**
 * The WebAssembly instructions the engine's text uses, with their binary encodings (WebAssembly
 * Core Specification 2.0 §5.4, SIMD §5.4.8, relaxed SIMD proposal) and the kind of immediate each
 * takes. test/inference/wat-assembler.test.ts checks every module the engine builds byte for byte
 * against wabt's assembler.
 */
export type Immediate =
  | 'none'
  | 'local'
  | 'func'
  | 'label'
  | 'labels'
  | 'memarg'
  | 'i32'
  | 'i64'
  | 'f32'
  | 'f64'
  | 'v128'
  | 'lane'
  | 'shuffle'
  | 'memidx'
  | 'memidx2';

export interface Opcode {
  /** Prefix byte (0xfc, 0xfd) or undefined for single-byte opcodes. */
  prefix?: number;
  code: number;
  imm: Immediate;
  /** log2 of the natural alignment of a memory access. */
  align?: number;
}

const table: Record<string, Opcode> = {};
const plain = (code: number, imm: Immediate, ...names: string[]) => {
  names.forEach((name, i) => {
    table[name] = { code: code + i, imm };
  });
};
const memory = (code: number, align: number, name: string, prefix?: number) => {
  table[name] =
    prefix === undefined ? { code, imm: 'memarg', align } : { prefix, code, imm: 'memarg', align };
};
const simd = (code: number, imm: Immediate, ...names: string[]) => {
  names.forEach((name, i) => {
    if (name !== '') table[name] = { prefix: 0xfd, code: code + i, imm };
  });
};

plain(0x00, 'none', 'unreachable', 'nop');
plain(0x0c, 'label', 'br', 'br_if');
plain(0x0e, 'labels', 'br_table');
plain(0x0f, 'none', 'return');
plain(0x10, 'func', 'call');
plain(0x1a, 'none', 'drop', 'select');
plain(0x20, 'local', 'local.get', 'local.set', 'local.tee');
memory(0x28, 2, 'i32.load');
memory(0x29, 3, 'i64.load');
memory(0x2a, 2, 'f32.load');
memory(0x2b, 3, 'f64.load');
memory(0x2c, 0, 'i32.load8_s');
memory(0x2d, 0, 'i32.load8_u');
memory(0x36, 2, 'i32.store');
memory(0x37, 3, 'i64.store');
memory(0x38, 2, 'f32.store');
memory(0x39, 3, 'f64.store');
memory(0x3a, 0, 'i32.store8');
plain(0x3f, 'memidx', 'memory.size', 'memory.grow');
plain(0x41, 'i32', 'i32.const');
plain(0x42, 'i64', 'i64.const');
plain(0x43, 'f32', 'f32.const');
plain(0x44, 'f64', 'f64.const');
plain(
  0x45,
  'none',
  'i32.eqz',
  'i32.eq',
  'i32.ne',
  'i32.lt_s',
  'i32.lt_u',
  'i32.gt_s',
  'i32.gt_u',
  'i32.le_s',
  'i32.le_u',
  'i32.ge_s',
  'i32.ge_u',
);
plain(0x5b, 'none', 'f32.eq', 'f32.ne', 'f32.lt', 'f32.gt', 'f32.le', 'f32.ge');
plain(0x61, 'none', 'f64.eq', 'f64.ne', 'f64.lt', 'f64.gt', 'f64.le', 'f64.ge');
plain(
  0x67,
  'none',
  'i32.clz',
  'i32.ctz',
  'i32.popcnt',
  'i32.add',
  'i32.sub',
  'i32.mul',
  'i32.div_s',
  'i32.div_u',
  'i32.rem_s',
  'i32.rem_u',
  'i32.and',
  'i32.or',
  'i32.xor',
  'i32.shl',
  'i32.shr_s',
  'i32.shr_u',
);
plain(
  0x8b,
  'none',
  'f32.abs',
  'f32.neg',
  'f32.ceil',
  'f32.floor',
  'f32.trunc',
  'f32.nearest',
  'f32.sqrt',
  'f32.add',
  'f32.sub',
  'f32.mul',
  'f32.div',
  'f32.min',
  'f32.max',
  'f32.copysign',
);
plain(
  0x99,
  'none',
  'f64.abs',
  'f64.neg',
  'f64.ceil',
  'f64.floor',
  'f64.trunc',
  'f64.nearest',
  'f64.sqrt',
  'f64.add',
  'f64.sub',
  'f64.mul',
  'f64.div',
  'f64.min',
  'f64.max',
  'f64.copysign',
);
plain(0xb2, 'none', 'f32.convert_i32_s', 'f32.convert_i32_u');
plain(0xb6, 'none', 'f32.demote_f64', 'f64.convert_i32_s', 'f64.convert_i32_u');
plain(0xbb, 'none', 'f64.promote_f32', 'i32.reinterpret_f32');
plain(0xbe, 'none', 'f32.reinterpret_i32');
table['memory.copy'] = { prefix: 0xfc, code: 10, imm: 'memidx2' };
table['memory.fill'] = { prefix: 0xfc, code: 11, imm: 'memidx' };

memory(0x00, 4, 'v128.load', 0xfd);
memory(0x09, 2, 'v128.load32_splat', 0xfd);
memory(0x0a, 3, 'v128.load64_splat', 0xfd);
memory(0x0b, 4, 'v128.store', 0xfd);
simd(0x0c, 'v128', 'v128.const');
simd(0x0d, 'shuffle', 'i8x16.shuffle');
simd(0x11, 'none', 'i32x4.splat', 'i64x2.splat', 'f32x4.splat', 'f64x2.splat');
simd(0x1b, 'lane', 'i32x4.extract_lane', 'i32x4.replace_lane');
simd(
  0x1f,
  'lane',
  'f32x4.extract_lane',
  'f32x4.replace_lane',
  'f64x2.extract_lane',
  'f64x2.replace_lane',
);
simd(
  0x37,
  'none',
  'i32x4.eq',
  'i32x4.ne',
  'i32x4.lt_s',
  'i32x4.lt_u',
  'i32x4.gt_s',
  'i32x4.gt_u',
  'i32x4.le_s',
  'i32x4.le_u',
  'i32x4.ge_s',
  'i32x4.ge_u',
  'f32x4.eq',
  'f32x4.ne',
  'f32x4.lt',
  'f32x4.gt',
  'f32x4.le',
  'f32x4.ge',
  'f64x2.eq',
  'f64x2.ne',
  'f64x2.lt',
  'f64x2.gt',
  'f64x2.le',
  'f64x2.ge',
  'v128.not',
  'v128.and',
  'v128.andnot',
  'v128.or',
  'v128.xor',
  'v128.bitselect',
  'v128.any_true',
);
memory(0x5c, 2, 'v128.load32_zero', 0xfd);
memory(0x5d, 3, 'v128.load64_zero', 0xfd);
simd(0x5e, 'none', 'f32x4.demote_f64x2_zero', 'f64x2.promote_low_f32x4');
simd(0x67, 'none', 'f32x4.ceil', 'f32x4.floor', 'f32x4.trunc', 'f32x4.nearest');
simd(0xa0, 'none', 'i32x4.abs', 'i32x4.neg');
simd(0xa3, 'none', 'i32x4.all_true', 'i32x4.bitmask');
simd(0xab, 'none', 'i32x4.shl', 'i32x4.shr_s', 'i32x4.shr_u', 'i32x4.add');
simd(0xb1, 'none', 'i32x4.sub');
simd(0xb5, 'none', 'i32x4.mul', 'i32x4.min_s', 'i32x4.min_u', 'i32x4.max_s', 'i32x4.max_u');
simd(
  0xe0,
  'none',
  'f32x4.abs',
  'f32x4.neg',
  '',
  'f32x4.sqrt',
  'f32x4.add',
  'f32x4.sub',
  'f32x4.mul',
  'f32x4.div',
  'f32x4.min',
  'f32x4.max',
  'f32x4.pmin',
  'f32x4.pmax',
  'f64x2.abs',
  'f64x2.neg',
  '',
  'f64x2.sqrt',
  'f64x2.add',
  'f64x2.sub',
  'f64x2.mul',
  'f64x2.div',
  'f64x2.min',
  'f64x2.max',
  'f64x2.pmin',
  'f64x2.pmax',
  'i32x4.trunc_sat_f32x4_s',
  'i32x4.trunc_sat_f32x4_u',
  'f32x4.convert_i32x4_s',
  'f32x4.convert_i32x4_u',
);
simd(0x105, 'none', 'f32x4.relaxed_madd', 'f32x4.relaxed_nmadd');

// Threads proposal: the helper threads' wait/notify handshake and their claim on a share of rows.
const atomic = (code: number, align: number, name: string) => {
  table[name] = { prefix: 0xfe, code, imm: 'memarg', align };
};
atomic(0x00, 2, 'memory.atomic.notify');
atomic(0x01, 2, 'memory.atomic.wait32');
atomic(0x10, 2, 'i32.atomic.load');
atomic(0x17, 2, 'i32.atomic.store');
atomic(0x1e, 2, 'i32.atomic.rmw.add');
atomic(0x48, 2, 'i32.atomic.rmw.cmpxchg');

export const OPCODES: Readonly<Record<string, Opcode>> = table;
