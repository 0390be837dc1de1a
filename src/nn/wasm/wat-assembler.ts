import { OPCODES, type Opcode } from './wat-opcodes.js';

/**
 * A WebAssembly text assembler for the subset the engine is written in: one module of imported or
 * defined memories and imported and defined functions (named params, results, locals, inline
 * exports), with bodies in folded (`(i32.add (local.get $a) (i32.const 1))`) or plain form and
 * structured control as folded `block`/`loop`/`if`. It turns the engine's text into bytes in well
 * under a millisecond, synchronously, with no dependency (wabt's assembler needs tens of
 * milliseconds to start; the ≤ 50 ms load budget includes this). test/inference/wat-assembler.test.ts
 * checks its output byte for byte against wabt's.
 */

type SExpr = string | { str: string } | SExpr[];

const VALTYPES: Record<string, number> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b };

export class WatError extends Error {}

const OPEN = 40; // (
const CLOSE = 41; // )
const QUOTE = 34; // "
const SEMI = 59; // ;
const NEWLINE = 10;

/** Atoms end at whitespace, parentheses, quotes and semicolons. */
const isDelimiter = (c: number): boolean =>
  c <= 32 || c === OPEN || c === CLOSE || c === QUOTE || c === SEMI;

function tokenize(text: string): SExpr[] {
  const root: SExpr[] = [];
  const stack: SExpr[][] = [root];
  let top = root;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c <= 32) {
      i++;
    } else if (c === SEMI && text.charCodeAt(i + 1) === SEMI) {
      while (i < n && text.charCodeAt(i) !== NEWLINE) i++;
    } else if (c === OPEN && text.charCodeAt(i + 1) === SEMI) {
      const end = text.indexOf(';)', i + 2);
      if (end < 0) throw new WatError('unterminated block comment');
      i = end + 2;
    } else if (c === OPEN) {
      const list: SExpr[] = [];
      top.push(list);
      stack.push(list);
      top = list;
      i++;
    } else if (c === CLOSE) {
      if (stack.length === 1) throw new WatError('unbalanced )');
      stack.pop();
      top = stack[stack.length - 1]!;
      i++;
    } else if (c === QUOTE) {
      const end = text.indexOf('"', i + 1);
      if (end < 0) throw new WatError('unterminated string');
      top.push({ str: text.slice(i + 1, end) });
      i = end + 1;
    } else {
      let j = i + 1;
      while (j < n && !isDelimiter(text.charCodeAt(j))) j++;
      top.push(text.slice(i, j));
      i = j;
    }
  }
  if (stack.length !== 1) throw new WatError('unbalanced (');
  return root;
}

class Bytes {
  private buf = new Uint8Array(256);
  length = 0;
  byte(b: number): void {
    if (this.length === this.buf.length) {
      const grown = new Uint8Array(this.buf.length * 2);
      grown.set(this.buf);
      this.buf = grown;
    }
    this.buf[this.length++] = b;
  }
  bytes(other: Bytes): void {
    for (let i = 0; i < other.length; i++) this.byte(other.buf[i]!);
  }
  /** Appends a u32 length prefix, then the bytes of `other`. */
  sized(other: Bytes): void {
    this.u32(other.length);
    this.bytes(other);
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
  /** Removes and returns the bytes from `mark` on. */
  cut(mark: number): number[] {
    const out = Array.from(this.buf.subarray(mark, this.length));
    this.length = mark;
    return out;
  }
  u32(v: number): void {
    let x = v >>> 0;
    do {
      let b = x & 0x7f;
      x >>>= 7;
      if (x !== 0) b |= 0x80;
      this.byte(b);
    } while (x !== 0);
  }
  s64(v: bigint): void {
    let x = v;
    for (;;) {
      const b = Number(x & 0x7fn);
      x >>= 7n;
      const done = (x === 0n && (b & 0x40) === 0) || (x === -1n && (b & 0x40) !== 0);
      this.byte(done ? b : b | 0x80);
      if (done) return;
    }
  }
  f32(v: number): void {
    SCRATCH.setFloat32(0, v, true);
    for (let k = 0; k < 4; k++) this.byte(SCRATCH.getUint8(k));
  }
  f64(v: number): void {
    SCRATCH.setFloat64(0, v, true);
    for (let k = 0; k < 8; k++) this.byte(SCRATCH.getUint8(k));
  }
  name(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u32(b.length);
    for (const x of b) this.byte(x);
  }
  vec(items: Bytes[]): void {
    this.u32(items.length);
    for (const it of items) this.bytes(it);
  }
}

const SCRATCH = new DataView(new ArrayBuffer(8));

const isAtom = (e: SExpr | undefined): e is string => typeof e === 'string';
const isList = (e: SExpr | undefined): e is SExpr[] => Array.isArray(e);
const head = (e: SExpr | undefined): string | undefined =>
  isList(e) && isAtom(e[0]) ? e[0] : undefined;

function parseNumber(atom: string): number {
  const clean = atom.replaceAll('_', '');
  const v = Number(clean);
  if (Number.isNaN(v)) throw new WatError(`not a number: ${atom}`);
  return v;
}

function parseFloatAtom(atom: string): number {
  if (atom === 'inf' || atom === '+inf') return Number.POSITIVE_INFINITY;
  if (atom === '-inf') return Number.NEGATIVE_INFINITY;
  if (atom === 'nan' || atom === '+nan') return Number.NaN;
  return parseNumber(atom);
}

interface FuncSig {
  params: number[];
  results: number[];
}

interface FuncDef {
  name: string | undefined;
  sig: FuncSig;
  typeIndex: number;
  exportName: string | undefined;
  localNames: Map<string, number>;
  locals: number[];
  body: SExpr[];
}

interface MemoryDef {
  name: string | undefined;
  min: number;
  max: number | undefined;
  shared: boolean;
  import?: [string, string];
  exportName?: string;
}

function limits(b: Bytes, m: MemoryDef): void {
  b.byte((m.max !== undefined ? 1 : 0) | (m.shared ? 2 : 0));
  b.u32(m.min);
  if (m.max !== undefined) b.u32(m.max);
}

function parseMemory(field: SExpr[], start: number): MemoryDef {
  let i = start;
  let name: string | undefined;
  if (isAtom(field[i]) && (field[i] as string).startsWith('$')) name = field[i++] as string;
  const min = parseNumber(field[i++] as string);
  let max: number | undefined;
  if (isAtom(field[i]) && field[i] !== 'shared') max = parseNumber(field[i++] as string);
  const shared = field[i] === 'shared';
  return { name, min, max, shared };
}

/** Assembles the module in `text` into a WebAssembly binary. */
export function assembleWat(text: string): Uint8Array {
  const top = tokenize(text);
  const module = top[0];
  if (top.length !== 1 || head(module) !== 'module') throw new WatError('expected one (module …)');
  const fields = (module as SExpr[]).slice(1);

  const types: FuncSig[] = [];
  const typeKey = (s: FuncSig) => `${s.params.join(',')}>${s.results.join(',')}`;
  const typeIndexOf = (s: FuncSig): number => {
    const key = typeKey(s);
    const found = types.findIndex((t) => typeKey(t) === key);
    if (found >= 0) return found;
    types.push(s);
    return types.length - 1;
  };

  const memories: MemoryDef[] = [];
  const funcs: FuncDef[] = [];
  for (const field of fields) {
    if (!isList(field)) throw new WatError('unexpected atom at module level');
    const kind = head(field);
    if (kind === 'import') {
      const [, mod, nm, desc] = field as [string, { str: string }, { str: string }, SExpr[]];
      if (head(desc) !== 'memory') throw new WatError('only memories can be imported');
      memories.push({ ...parseMemory(desc, 1), import: [mod.str, nm.str] });
    } else if (kind === 'memory') {
      const mem = parseMemory(field, 1);
      const exp = field.find((e) => head(e) === 'export') as SExpr[] | undefined;
      memories.push(exp ? { ...mem, exportName: (exp[1] as { str: string }).str } : mem);
    } else if (kind === 'func') {
      funcs.push(parseFunc(field, typeIndexOf));
    } else {
      throw new WatError(`unsupported module field ${kind}`);
    }
  }
  const funcIndex = new Map<string, number>();
  funcs.forEach((f, i) => {
    if (f.name) funcIndex.set(f.name, i);
  });

  const out = new Bytes();
  for (const b of [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]) out.byte(b);
  const section = (id: number, write: (b: Bytes) => void) => {
    const content = new Bytes();
    write(content);
    out.byte(id);
    out.sized(content);
  };

  section(1, (b) => {
    b.u32(types.length);
    for (const t of types) {
      b.byte(0x60);
      b.u32(t.params.length);
      for (const p of t.params) b.byte(p);
      b.u32(t.results.length);
      for (const r of t.results) b.byte(r);
    }
  });
  const imported = memories.filter((m) => m.import);
  if (imported.length > 0) {
    section(2, (b) => {
      b.u32(imported.length);
      for (const m of imported) {
        b.name(m.import![0]);
        b.name(m.import![1]);
        b.byte(0x02);
        limits(b, m);
      }
    });
  }
  if (funcs.length > 0) {
    section(3, (b) => {
      b.u32(funcs.length);
      for (const f of funcs) b.u32(f.typeIndex);
    });
  }
  const defined = memories.filter((m) => !m.import);
  if (defined.length > 0) {
    section(5, (b) => {
      b.u32(defined.length);
      for (const m of defined) limits(b, m);
    });
  }
  const exports: [string, number, number][] = [];
  memories.forEach((m, i) => {
    if (m.exportName !== undefined) exports.push([m.exportName, 0x02, i]);
  });
  funcs.forEach((f, i) => {
    if (f.exportName !== undefined) exports.push([f.exportName, 0x00, i]);
  });
  if (exports.length > 0) {
    section(7, (b) => {
      b.u32(exports.length);
      for (const [name, kind, index] of exports) {
        b.name(name);
        b.byte(kind);
        b.u32(index);
      }
    });
  }
  if (funcs.length > 0) {
    section(10, (b) => {
      b.u32(funcs.length);
      for (const f of funcs) b.sized(encodeBody(f, funcIndex));
    });
  }
  return out.result();
}

function parseFunc(field: SExpr[], typeIndexOf: (s: FuncSig) => number): FuncDef {
  let i = 1;
  let name: string | undefined;
  if (isAtom(field[i]) && (field[i] as string).startsWith('$')) name = field[i++] as string;
  let exportName: string | undefined;
  const params: number[] = [];
  const results: number[] = [];
  const locals: number[] = [];
  const localNames = new Map<string, number>();
  const declare = (list: SExpr[], into: number[], offset: () => number) => {
    const items = list.slice(1) as string[];
    if (items[0]?.startsWith('$')) {
      // As wat2wasm: a second local of one name would silently alias the first's uses.
      if (localNames.has(items[0]))
        throw new WatError(`duplicate local ${items[0]} in ${name ?? 'a function'}`);
      localNames.set(items[0], offset());
      into.push(valtype(items[1]!));
    } else {
      for (const t of items) into.push(valtype(t));
    }
  };
  for (; i < field.length; i++) {
    const h = head(field[i]);
    const list = field[i] as SExpr[];
    if (h === 'export') exportName = (list[1] as { str: string }).str;
    else if (h === 'param') declare(list, params, () => params.length);
    else if (h === 'result') for (const t of list.slice(1) as string[]) results.push(valtype(t));
    else if (h === 'local') declare(list, locals, () => params.length + locals.length);
    else break;
  }
  const sig = { params, results };
  return {
    name,
    sig,
    typeIndex: typeIndexOf(sig),
    exportName,
    localNames,
    locals,
    body: field.slice(i),
  };
}

function valtype(t: string): number {
  const v = VALTYPES[t];
  if (v === undefined) throw new WatError(`unknown value type ${t}`);
  return v;
}

function encodeBody(f: FuncDef, funcIndex: Map<string, number>): Bytes {
  const b = new Bytes();
  // Locals: runs of one type, in declaration order.
  const groups: [number, number][] = [];
  for (const t of f.locals) {
    const last = groups.at(-1);
    if (last && last[1] === t) last[0]++;
    else groups.push([1, t]);
  }
  b.u32(groups.length);
  for (const [n, t] of groups) {
    b.u32(n);
    b.byte(t);
  }
  const labels: (string | undefined)[] = [];
  const local = (ref: string): number => {
    const idx = ref.startsWith('$') ? f.localNames.get(ref) : parseNumber(ref);
    if (idx === undefined) throw new WatError(`unknown local ${ref} in ${f.name}`);
    return idx;
  };
  const label = (ref: string): number => {
    if (!ref.startsWith('$')) return parseNumber(ref);
    const depth = labels.length - 1 - labels.lastIndexOf(ref);
    if (depth >= labels.length) throw new WatError(`unknown label ${ref} in ${f.name}`);
    return depth;
  };

  const blockType = (items: SExpr[], i: number): [number, number] => {
    const h = head(items[i]);
    if (h === 'result') {
      const list = items[i] as string[];
      return [valtype(list[1]!), i + 1];
    }
    return [0x40, i];
  };

  /** Writes the immediates of `op` from items[i…] to `b`; returns the index after them. */
  const immediates = (name: string, op: Opcode, items: SExpr[], i: number, b: Bytes): number => {
    switch (op.imm) {
      case 'none':
        return i;
      case 'local':
        b.u32(local(items[i] as string));
        return i + 1;
      case 'func': {
        const ref = items[i] as string;
        const idx = ref.startsWith('$') ? funcIndex.get(ref) : parseNumber(ref);
        if (idx === undefined) throw new WatError(`unknown function ${ref}`);
        b.u32(idx);
        return i + 1;
      }
      case 'label':
        b.u32(label(items[i] as string));
        return i + 1;
      case 'labels': {
        const refs: number[] = [];
        while (isAtom(items[i])) refs.push(label(items[i++] as string));
        if (refs.length === 0) throw new WatError('br_table needs labels');
        b.u32(refs.length - 1);
        for (const r of refs) b.u32(r);
        return i;
      }
      case 'memarg': {
        let offset = 0;
        let align = op.align!;
        while (isAtom(items[i]) && /^(offset|align)=/.test(items[i] as string)) {
          const [k, v] = (items[i] as string).split('=') as [string, string];
          if (k === 'offset') offset = parseNumber(v);
          else align = Math.log2(parseNumber(v));
          i++;
        }
        b.u32(align);
        b.u32(offset);
        return i;
      }
      case 'i32':
        b.s64(BigInt(parseNumber(items[i] as string) | 0));
        return i + 1;
      case 'i64':
        b.s64(BigInt.asIntN(64, BigInt((items[i] as string).replaceAll('_', ''))));
        return i + 1;
      case 'f32':
        b.f32(parseFloatAtom(items[i] as string));
        return i + 1;
      case 'f64':
        b.f64(parseFloatAtom(items[i] as string));
        return i + 1;
      case 'v128': {
        const shape = items[i] as string;
        const lanes = shape === 'f32x4' || shape === 'i32x4' ? 4 : shape === 'f64x2' ? 2 : 0;
        if (lanes === 0) throw new WatError(`unsupported v128.const shape ${shape}`);
        for (let k = 0; k < lanes; k++) {
          const v = items[i + 1 + k] as string;
          if (shape === 'f32x4') b.f32(parseFloatAtom(v));
          else if (shape === 'f64x2') b.f64(parseFloatAtom(v));
          else {
            const x = parseNumber(v) | 0;
            for (let s = 0; s < 4; s++) b.byte((x >>> (8 * s)) & 0xff);
          }
        }
        return i + 1 + lanes;
      }
      case 'lane':
        b.byte(parseNumber(items[i] as string));
        return i + 1;
      case 'shuffle':
        for (let k = 0; k < 16; k++) b.byte(parseNumber(items[i + k] as string));
        return i + 16;
      case 'memidx':
        b.byte(0);
        return i;
      case 'memidx2':
        b.byte(0);
        b.byte(0);
        return i;
    }
    throw new WatError(`bad immediate for ${name}`);
  };

  const opcode = (name: string): Opcode => {
    const op = OPCODES[name];
    if (!op) throw new WatError(`unknown instruction ${name} in ${f.name}`);
    return op;
  };
  const emitOp = (op: Opcode) => {
    if (op.prefix !== undefined) {
      b.byte(op.prefix);
      b.u32(op.code);
    } else b.byte(op.code);
  };

  const structured = (kind: string, items: SExpr[]) => {
    let i = 1;
    let name: string | undefined;
    if (isAtom(items[i]) && (items[i] as string).startsWith('$')) name = items[i++] as string;
    const [bt, next] = blockType(items, i);
    i = next;
    if (kind === 'if') {
      while (i < items.length && head(items[i]) !== 'then') expr(items[i++]!);
      b.byte(0x04);
      b.byte(bt);
      labels.push(name);
      const then = items[i] as SExpr[];
      seq(then.slice(1));
      const els = items[i + 1] as SExpr[] | undefined;
      if (els && head(els) === 'else') {
        b.byte(0x05);
        seq(els.slice(1));
      }
    } else {
      b.byte(kind === 'block' ? 0x02 : 0x03);
      b.byte(bt);
      labels.push(name);
      seq(items.slice(i));
    }
    labels.pop();
    b.byte(0x0b);
  };

  /** A folded expression: operands first, then the operator. */
  const expr = (e: SExpr): void => {
    if (!isList(e)) throw new WatError(`expected an expression, got ${JSON.stringify(e)}`);
    const name = head(e)!;
    if (name === 'block' || name === 'loop' || name === 'if') {
      structured(name, e);
      return;
    }
    const op = opcode(name);
    // The immediates follow the name in the text but the operands in the binary.
    if (op.imm === 'none') {
      for (let i = 1; i < e.length; i++) expr(e[i]!);
      emitOp(op);
      return;
    }
    const mark = b.length;
    const after = immediates(name, op, e, 1, b);
    const imm = b.cut(mark);
    for (let i = after; i < e.length; i++) expr(e[i]!);
    emitOp(op);
    for (const x of imm) b.byte(x);
  };

  /** A sequence of plain and folded instructions. */
  const seq = (items: SExpr[]): void => {
    let i = 0;
    while (i < items.length) {
      const item = items[i]!;
      if (isList(item)) {
        expr(item);
        i++;
      } else {
        const op = opcode(item as string);
        emitOp(op);
        i = immediates(item as string, op, items, i + 1, b);
      }
    }
  };

  seq(f.body);
  b.byte(0x0b);
  return b;
}
