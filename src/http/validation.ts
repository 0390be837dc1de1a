import type { FastifySchemaCompiler, FastifySerializerCompiler } from 'fastify';
import type { z } from 'zod';
import {
  describeLocations,
  didYouMean,
  type ErrorLocation,
  formatPath,
  issuesToLocations,
  NormserveError,
  quoteList,
  safeParseWorded,
} from '../errors/index.js';
import { ROW_ARRAY_MESSAGE, unknownInputMessage } from '../service/index.js';
import { ROWS_ARRAY_MESSAGE } from './schemas/common.js';
import { LIMITS } from './schemas/limits.js';

const isStream = (data: unknown): boolean =>
  typeof data === 'object' &&
  data !== null &&
  typeof (data as { pipe?: unknown }).pipe === 'function';

const roots: Record<string, string> = {
  body: '',
  querystring: 'query',
  params: 'path',
  headers: 'headers',
};

/** What a zod schema's definition holds that fieldsAt walks through (zod 4's `_zod.def`). */
interface SchemaDef {
  type?: string;
  shape?: Record<string, { _zod: { def: SchemaDef } }>;
  out?: { _zod: { def: SchemaDef } };
  innerType?: { _zod: { def: SchemaDef } };
  in?: { _zod: { def: SchemaDef } };
  element?: { _zod: { def: SchemaDef } };
}

/**
 * The fields of the object `path` leads to in `schema`, through arrays' elements and optional,
 * default and pipe wrappers; none where the path goes elsewhere (a union, a record).
 */
function fieldsAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let def = (schema as unknown as { _zod: { def: SchemaDef } })._zod.def;
  // A pipe's input, unless that is a transform (z.preprocess): then what the pipe parses it into.
  const inner = () => def.innerType ?? (def.in?._zod.def.type === 'transform' ? def.out : def.in);
  const unwrap = () => {
    for (let wrapper = inner(); wrapper; wrapper = inner()) def = wrapper._zod.def;
  };
  unwrap();
  for (const key of path) {
    const field = typeof key === 'string' ? def.shape?.[key] : def.element;
    if (field === undefined) return [];
    def = field._zod.def;
    unwrap();
  }
  return def.shape === undefined ? [] : Object.keys(def.shape);
}

/**
 * zod reports unknown keys of a strict object once, at the object (`(root): Unrecognized key`);
 * each key is named as its own place instead, e.g. `instance: unknown field`. At most
 * LIMITS.errorLocations places are kept; `total` counts them all.
 */
function locations(
  issues: readonly z.core.$ZodIssue[],
  root: string,
  schema: z.ZodType,
): { shown: ErrorLocation[]; total: number } {
  const shown: ErrorLocation[] = [];
  let total = 0;
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      total += issue.keys.length;
      const known = fieldsAt(schema, issue.path);
      const unknown = root === 'query' ? 'unknown query parameter' : 'unknown field';
      for (const key of issue.keys.slice(0, LIMITS.errorLocations - shown.length)) {
        shown.push({
          // formatPath quotes a key that is no identifier: escaped and cut, as every echo.
          path: formatPath([...issue.path, key], root),
          // `instance` for TF Serving's `instances`: the field it likely meant.
          message: `${unknown}${didYouMean(key, known)}`,
        });
      }
    } else {
      total++;
      if (shown.length < LIMITS.errorLocations) shown.push(...issuesToLocations([issue], root));
    }
  }
  return { shown, total };
}

/**
 * Bodies whose fields hold rows, screened before zod sees them (`screenRows`): zod checks every
 * element of an array and reports each bad one, so a 16 MiB predict body of 3,000,000 numbers
 * where rows belong built 3,000,000 issues (1.4 GB and 2 s in zod alone, 14 s with the worded
 * messages) before one was shown, and 8,300,000 of them took the process past its heap.
 */
const rowFields = new WeakMap<z.ZodType, readonly RowField[]>();

/**
 * A field of rows: its name; for TF Serving's named forms (predict-request.ts) also the model's
 * input name and where the name may stand: `each` row an object `{input: sample}` (`instances`),
 * or the `whole` list under it (`inputs: {input: [sample, …]}`).
 */
export type RowField = string | { field: string; input: string; named: 'each' | 'whole' };

/** Marks `fields` of `schema`'s object as arrays of rows, to be screened before validation. */
export function withRowFields<T extends z.ZodType>(schema: T, fields: readonly RowField[]): T {
  rowFields.set(schema, fields);
  return schema;
}

/** A JSON object (not null, not an array). */
export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Collects error locations: the first LIMITS.errorLocations, and how many there are in all.
 */
class Screened {
  readonly shown: ErrorLocation[] = [];
  total = 0;
  add(path: readonly PropertyKey[], message: string) {
    this.total++;
    if (this.shown.length < LIMITS.errorLocations)
      this.shown.push({ path: formatPath(path), message });
  }
}

/**
 * An object whose keys look like features named one by one (two or more, every value a number, or
 * every value a column of numbers), as pandas' `to_dict("records")` writes rows: the newcomer
 * review of 2026-12-04 got an "unknown input" for each of 64 pixels and nothing on the order the
 * model wants. One key holding a row (`{"x": [1, 2]}`) is a misnamed input, said as such.
 */
function namesFeatures(value: Record<string, unknown>): boolean {
  let keys = 0;
  let scalars = 0;
  for (const key in value) {
    const v = value[key];
    keys++;
    if (typeof v === 'number') scalars++;
    else if (!Array.isArray(v) || !v.every((n) => typeof n === 'number')) return false;
  }
  return keys >= 2 && (scalars === keys || scalars === 0);
}

/** An object naming the input: an unknown key, or none at all, is named here, not by zod's union. */
function screenNames(
  value: Record<string, unknown>,
  input: string,
  path: PropertyKey[],
  wanted: string,
  out: Screened,
): boolean {
  if (!(input in value) && namesFeatures(value)) {
    // `{"pixel_0": 0, "pixel_1": 3, …}`: one line, not an "unknown input" per feature.
    out.add(
      path,
      `expected ${wanted}: an object names the model's one input "${input}", not its features (${quoteList(Object.keys(value), 48)}); send a row as an array of its feature values in the model's order, which its metadata lists when it records them (training.feature_names)`,
    );
    return false;
  }
  let ok = true;
  for (const key in value) {
    if (key === input) continue;
    out.add([...path, key], unknownInputMessage(key));
    ok = false;
  }
  if (!(input in value)) {
    if (ok) out.add(path, `expected ${wanted}: the model's one input is "${input}"`);
    return false;
  }
  return ok;
}

/** Elements of `rows` (at `path`) that are not arrays. */
function screenArrays(rows: readonly unknown[], path: PropertyKey[], out: Screened) {
  for (let i = 0; i < rows.length; i++)
    if (!Array.isArray(rows[i])) out.add([...path, i], ROW_ARRAY_MESSAGE);
}

/**
 * The elements of `data`'s row fields that are not arrays, as zod would name them (the first
 * LIMITS.errorLocations, and how many there are), or undefined when every element is an array
 * (zod then checks the rows, one issue at most per row that fails). TF Serving's named forms are
 * screened as TF Serving reads them (json_tensor.cc): `instances` are all lists, or all objects
 * (the first one decides), each naming the input; an `inputs` object names the input, whose list
 * is screened as rows.
 */
function screenRows(
  data: unknown,
  fields: readonly RowField[],
): { shown: ErrorLocation[]; total: number } | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const out = new Screened();
  for (const spec of fields) {
    const { field, input, named } = typeof spec === 'string' ? { field: spec } : spec;
    const value = (data as Record<string, unknown>)[field];
    if (named === 'whole' && isPlainObject(value)) {
      const list = `{"${input}": [sample, …]}`;
      if (!screenNames(value, input!, [field], list, out)) continue;
      const rows = value[input!];
      if (Array.isArray(rows)) screenArrays(rows, [field, input!], out);
      else out.add([field, input!], ROWS_ARRAY_MESSAGE);
      continue;
    }
    if (!Array.isArray(value)) continue;
    if (named !== 'each') {
      screenArrays(value, [field], out);
      continue;
    }
    const form = `every one a sample, or every one {"${input}": sample}`;
    if (isPlainObject(value[0])) {
      for (let i = 0; i < value.length; i++) {
        const item = value[i];
        if (!isPlainObject(item)) {
          out.add([field, i], `expected {"${input}": sample}, as ${field}[0] is (${form})`);
        } else if (screenNames(item, input!, [field, i], `{"${input}": sample}`, out)) {
          if (!Array.isArray(item[input!])) out.add([field, i, input!], ROW_ARRAY_MESSAGE);
        }
      }
      continue;
    }
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (Array.isArray(item)) continue;
      out.add(
        [field, i],
        isPlainObject(item)
          ? `${ROW_ARRAY_MESSAGE}, as ${field}[0] is (${form})`
          : ROW_ARRAY_MESSAGE,
      );
    }
  }
  return out.total === 0 ? undefined : { shown: out.shown, total: out.total };
}

/** Validates `data` with a zod schema: the value, or the INVALID_INPUT error naming each place. */
export function validate(
  schema: z.ZodType,
  data: unknown,
  httpPart: string | undefined,
): { value: unknown; error?: undefined } | { value?: undefined; error: NormserveError } {
  const fields = rowFields.get(schema);
  const screened = fields && screenRows(data, fields);
  if (screened) {
    return {
      error: new NormserveError(
        'INVALID_INPUT',
        describeLocations(screened.shown, 3, screened.total),
        {
          errors: screened.shown,
        },
      ),
    };
  }
  const result = safeParseWorded(schema, data);
  if (result.success) return { value: result.data };
  if (data == null && (httpPart ?? 'body') === 'body') {
    // A POST with no body at all, which Fastify hands over as null like a JSON `null`: zod would
    // say "expected an object, got null", a value most such clients never sent.
    const missing = { path: '(root)', message: 'no body (or JSON null); expected a JSON object' };
    return {
      error: new NormserveError('INVALID_INPUT', `${missing.path}: ${missing.message}`, {
        errors: [missing],
      }),
    };
  }
  const { shown, total } = locations(result.error.issues, roots[httpPart ?? 'body'] ?? '', schema);
  return {
    error: new NormserveError('INVALID_INPUT', describeLocations(shown, 3, total), {
      errors: shown,
    }),
  };
}

/** Like validate, but throws the error (for handlers that validate what they were handed). */
export function parseWith<T extends z.ZodType>(
  schema: T,
  data: unknown,
  httpPart: 'body' | 'querystring',
): z.output<T> {
  const result = validate(schema, data, httpPart);
  if (result.error) throw result.error;
  return result.value as z.output<T>;
}

/**
 * Schemas a handler validates itself (the prediction routes: a fast check compiled per model,
 * with the same zod schema as the fallback that names the errors). They still document the route
 * in the OpenAPI document; Fastify passes their part through unvalidated.
 */
const handlerValidated = new WeakSet<z.ZodType>();
export function validatedByHandler<T extends z.ZodType>(schema: T): T {
  handlerValidated.add(schema);
  return schema;
}

/**
 * Validates with the route's zod schema and fails with INVALID_INPUT naming each place, e.g.
 * `instances[3][17]: expected a finite number` (paths of the body start at its top-level key).
 */
export const validatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  if (handlerValidated.has(schema)) return (data) => ({ value: data });
  return (data) => {
    // Streamed uploads (NDJSON, float32) reach the handler as a stream, read and checked there.
    if (httpPart === 'body' && isStream(data)) return { value: data };
    return validate(schema, data, httpPart);
  };
};

/**
 * Responses are serialised with JSON.stringify; their zod schemas document the API (OpenAPI) but
 * are not re-checked on every response, which would cost as much as validating the request.
 */
export const serializerCompiler: FastifySerializerCompiler<z.ZodType> = () => (data) =>
  JSON.stringify(data);
