import type { z } from 'zod';

/**
 * Whether a value would pass a schema, as a type guard: a value it accepts is the schema's output
 * (compileAccepts compiles only schemas whose output is their input). No issues, no output.
 */
export type Accepts<T = unknown> = (value: unknown) => value is T;

/** A compiled check of one part of a schema. */
type Predicate = (value: unknown) => boolean;

/** Internals of zod v4 schemas that the compiler reads (`schema._zod.def`). */
interface Def {
  type: string;
  checks?: { _zod: { def: CheckDef } }[];
  shape?: Record<string, z.ZodType>;
  catchall?: z.ZodType;
  element?: z.ZodType;
  innerType?: z.ZodType;
  keyType?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  values?: unknown[];
  entries?: Record<string, unknown>;
}
interface CheckDef {
  check: string;
  value?: number;
  inclusive?: boolean;
  minimum?: number;
  maximum?: number;
  length?: number;
  format?: string;
  pattern?: RegExp;
  fn?: (value: unknown) => unknown;
  when?: unknown;
}

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

class Unsupported extends Error {}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The checks of a number: finite always (zod 4 refuses ±Infinity and NaN), then bounds. */
function numberCheck(checks: CheckDef[]): Predicate {
  let min = -Infinity;
  let max = Infinity;
  let minInclusive = true;
  let maxInclusive = true;
  let int = false;
  for (const c of checks) {
    // Several bounds of one kind all hold (zod checks each): keep the tightest.
    if (c.check === 'greater_than') {
      const inclusive = c.inclusive ?? false;
      if (c.value! > min || (c.value === min && !inclusive)) {
        min = c.value!;
        minInclusive = inclusive;
      }
    } else if (c.check === 'less_than') {
      const inclusive = c.inclusive ?? false;
      if (c.value! < max || (c.value === max && !inclusive)) {
        max = c.value!;
        maxInclusive = inclusive;
      }
    } else if (c.check === 'number_format' && (c.format === 'safeint' || c.format === 'int32')) {
      int = true;
      if (c.format === 'int32') {
        min = Math.max(min, -2147483648);
        max = Math.min(max, 2147483647);
      }
    } else {
      throw new Unsupported(`number check ${c.check}`);
    }
  }
  return (v) =>
    typeof v === 'number' &&
    Number.isFinite(v) &&
    (minInclusive ? v >= min : v > min) &&
    (maxInclusive ? v <= max : v < max) &&
    (!int || Number.isSafeInteger(v));
}

/**
 * An array of numbers with finite inclusive bounds (a row of float32 values): one loop with the
 * comparisons inline, instead of a call of the element's check per value: a 784-value row
 * 1.2–1.9 against 6.2–6.7 µs, 256 rows of 64 values 26–43 against 138–145 µs (bench/README.md,
 * issue 11's fifth round). Finite bounds refuse NaN and ±Infinity as Number.isFinite does. Undefined for any other element (the general loop below).
 */
function numberArray(
  element: z.ZodType,
  minLength: number,
  maxLength: number,
): Predicate | undefined {
  const def = defOf(element);
  if (def.type !== 'number') return undefined;
  let low = -Infinity;
  let high = Infinity;
  for (const { _zod } of def.checks ?? []) {
    const c = _zod.def;
    if (c.check === 'greater_than' && c.inclusive) low = Math.max(low, c.value!);
    else if (c.check === 'less_than' && c.inclusive) high = Math.min(high, c.value!);
    else return undefined;
  }
  if (!Number.isFinite(low) || !Number.isFinite(high)) return undefined;
  return (v) => {
    if (!Array.isArray(v) || v.length < minLength || v.length > maxLength) return false;
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (typeof x !== 'number' || !(x >= low && x <= high)) return false;
    }
    return true;
  };
}

function lengthBounds(checks: CheckDef[]): { min: number; max: number } {
  let min = 0;
  let max = Infinity;
  for (const c of checks) {
    if (c.check === 'min_length') min = Math.max(min, c.minimum!);
    else if (c.check === 'max_length') max = Math.min(max, c.maximum!);
    else if (c.check === 'length_equals') {
      min = Math.max(min, c.length!);
      max = Math.min(max, c.length!);
    } else throw new Unsupported(`length check ${c.check}`);
  }
  return { min, max };
}

/** Refinements (`.refine(fn)`) run as they are; anything else on a composite is unsupported. */
function refinements(checks: CheckDef[]): ((value: unknown) => boolean)[] {
  return checks.map((c) => {
    if (c.check !== 'custom' || typeof c.fn !== 'function' || c.when !== undefined)
      throw new Unsupported(`check ${c.check}`);
    const fn = c.fn;
    return (value) => {
      const result = fn(value);
      if (result instanceof Promise) throw new Unsupported('async refinement');
      return Boolean(result);
    };
  });
}

function compile(schema: z.ZodType): Predicate {
  const def = defOf(schema);
  const checks = (def.checks ?? []).map((c) => c._zod.def);
  switch (def.type) {
    case 'unknown':
    case 'any':
      return () => true;
    case 'number':
      return numberCheck(checks);
    case 'string': {
      // `.regex(pattern)` (a model name): the pattern as zod tests it; other formats unsupported.
      const patterns = checks
        .filter((c) => c.check === 'string_format' && c.format === 'regex' && c.pattern)
        .map((c) => c.pattern!);
      const { min, max } = lengthBounds(
        checks.filter((c) => c.check !== 'string_format' || c.format !== 'regex'),
      );
      if (patterns.length === 0)
        return (v) => typeof v === 'string' && v.length >= min && v.length <= max;
      return (v) =>
        typeof v === 'string' &&
        v.length >= min &&
        v.length <= max &&
        patterns.every((p) => {
          p.lastIndex = 0;
          return p.test(v);
        });
    }
    case 'custom': {
      // z.custom / z.instanceof: the predicate is the check.
      const fn = (def as { fn?: (value: unknown) => unknown }).fn;
      if (typeof fn !== 'function' || checks.length > 0) throw new Unsupported('custom');
      return (v) => Boolean(fn(v));
    }
    case 'boolean':
      if (checks.length > 0) throw new Unsupported('boolean checks');
      return (v) => typeof v === 'boolean';
    case 'literal': {
      const values = def.values!;
      return (v) => values.includes(v);
    }
    case 'enum': {
      const values = Object.values(def.entries!);
      return (v) => values.includes(v);
    }
    case 'optional': {
      const inner = compile(def.innerType!);
      return (v) => v === undefined || inner(v);
    }
    case 'nullable': {
      const inner = compile(def.innerType!);
      return (v) => v === null || inner(v);
    }
    case 'union': {
      const options = def.options!.map(compile);
      return (v) => options.some((o) => o(v));
    }
    case 'array': {
      const { min, max } = lengthBounds(checks);
      const numbers = numberArray(def.element!, min, max);
      if (numbers) return numbers;
      const element = compile(def.element!);
      return (v) => {
        if (!Array.isArray(v) || v.length < min || v.length > max) return false;
        for (let i = 0; i < v.length; i++) if (!element(v[i])) return false;
        return true;
      };
    }
    case 'record': {
      if (checks.length > 0 || defOf(def.keyType!).type !== 'string')
        throw new Unsupported('record with key checks');
      if (defOf(def.keyType!).checks?.length) throw new Unsupported('record key checks');
      const value = compile(def.valueType!);
      return (v) => {
        if (!isObject(v)) return false;
        for (const key in v) if (!value(v[key])) return false;
        return true;
      };
    }
    case 'object': {
      const keys = Object.keys(def.shape!);
      const fields = keys.map((k) => compile(def.shape![k]!));
      const catchall = def.catchall ? defOf(def.catchall).type : 'strip';
      if (catchall !== 'never' && catchall !== 'strip' && catchall !== 'unknown')
        throw new Unsupported(`object catchall ${catchall}`);
      const strict = catchall === 'never';
      const known = new Set(keys);
      const refine = refinements(checks);
      return (v) => {
        if (!isObject(v)) return false;
        for (let i = 0; i < keys.length; i++) if (!fields[i]!(v[keys[i]!])) return false;
        if (strict) for (const key in v) if (!known.has(key)) return false;
        for (const r of refine) if (!r(v)) return false;
        return true;
      };
    }
    default:
      // Transforms, defaults, pipes, …: their output differs from their input, so a value that
      // passes is not what the handler would get from zod. Those schemas are not compiled.
      throw new Unsupported(def.type);
  }
}

/**
 * Compiles a zod schema into a plain predicate that accepts exactly the values the schema
 * accepts, for schemas whose parse output equals their input (no transforms or defaults):
 * objects (strict, stripping or loose), arrays with length bounds, finite numbers with bounds and
 * integer formats, strings with length bounds, booleans, literals, enums, records, unions,
 * optional/nullable and synchronous refinements. No issues are collected: a value it refuses is
 * parsed by the schema itself, which names every problem. zod stays the only description of the
 * input; this is a faster way to say "valid" for the common case. Returns undefined for a schema
 * it cannot compile.
 */
export function compileAccepts<T extends z.ZodType>(schema: T): Accepts<z.output<T>> | undefined {
  try {
    // The one place the guard is asserted: compile accepts exactly what the schema accepts.
    return compile(schema) as Accepts<z.output<T>>;
  } catch (e) {
    if (e instanceof Unsupported) return undefined;
    throw e;
  }
}
