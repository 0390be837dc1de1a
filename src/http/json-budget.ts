import type { FastifyRequest } from 'fastify';
import { NormserveError } from '../errors/index.js';
import {
  batchLimit,
  batchTooLarge,
  type InputShape,
  inputShapeOf,
  isAvailable,
  LIMITS,
  type ModelRegistry,
  type ServerConfig,
  tooManySamples,
} from '../service/index.js';
import { hasMoreContainers, hasMoreStrings } from './json-counts.js';

/**
 * How many arrays and objects, and how many strings, a route's JSON body may hold, counted before
 * it is parsed: V8's JSON.parse builds every one of them, and a 16 MB body of 5.6 million empty
 * arrays held the event loop 1.3–2 s (`{}` longer) before any limit could look at it, where 8
 * million zeros take 170 ms; 1.37 million keys (`"k0":0,…`) held it 2.4 s, 2.3 million short
 * strings 2.2 s. A route declares its budget in its options (`config.jsonBudget`); the others
 * get DEFAULT_BUDGET.
 */
export interface JsonBudget {
  /** The most arrays and objects a valid body of `chars` characters holds on this request. */
  containers(request: FastifyRequest, chars: number): number;
  /** The route's 413 for a body that holds more than `budget` arrays and objects. */
  refusal(request: FastifyRequest, chars: number, budget: number): NormserveError;
  /**
   * The most strings, keys included, a valid body of `chars` characters holds: rows are numbers,
   * so on the routes that read rows their envelope's (ENVELOPE_STRINGS), and on predict one key
   * per sample more (TF Serving's named instances, `{"input": sample}`).
   */
  strings(request: FastifyRequest, chars: number): number;
  /** The refusal of a body that holds more than `strings` strings (default: a 413). */
  stringRefusal?: (budget: number) => NormserveError;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    jsonBudget?: JsonBudget;
  }
}

/**
 * What a body holds around its rows, its envelope: 2 arrays and objects in a predict or
 * recalibrate body; at most 3 + 6·LIMITS.tensors (99) in an infer body (its parameters, each
 * input's object, shape and parameters, each output's object and parameters, and the lists).
 * 1024 also leaves room for `parameters` values that are arrays or objects, which the Open
 * Inference Protocol does not have (`$parameter: $string | $number | $boolean`) but the schema,
 * which reads no parameter but a few, does not refuse.
 */
export const ENVELOPE_CONTAINERS = 1024;

/**
 * The strings of a predict, infer or recalibrate body around its rows (which hold none: their
 * values are numbers). An infer body is the most: `id` and its value, `parameters`, `inputs` and
 * `outputs` (5); per input 7 (`name`, `shape`, `datatype`, `parameters`, `data`, and the values
 * of name and datatype), per output 3 (`name` and its value, `parameters`): 5 + 10·LIMITS.tensors
 * (165). The protocol's parameters are free (`$parameter: $string | $number | $boolean`, a few
 * per object: Triton's `binary_data_size`, `sequence_id`, …) and read by nobody but the binary
 * data ones, so there is no per-object limit to derive from: PARAMETER_STRINGS leaves room for 512
 * string-valued ones (or 1024 others) in all the request's parameters together. A predict body
 * holds 3 (`signature_name` and its value, `instances` or `inputs`), a recalibrate body 8.
 */
const PARAMETER_STRINGS = 1024;
export const ENVELOPE_STRINGS = 5 + 10 * LIMITS.tensors + PARAMETER_STRINGS;

/**
 * A text of n characters holds at most n/2 arrays and objects (`[]`) and n/2 strings (`""`),
 * and every budget is at least the envelope's: a body of at most this many characters cannot
 * exceed any, and is not counted (nor its route's budget looked up): a 1-row digits prediction
 * is about 200.
 */
const COUNTED_FROM_CHARS = 2 * Math.min(ENVELOPE_CONTAINERS, ENVELOPE_STRINGS);

/**
 * The budget of routes that read no rows (activate's `{ "note": … }`, and the 404s and 405s,
 * whose bodies Fastify parses too): a fixed one rather than none. 65,536 arrays and objects parse
 * in 7 ms (`node`, measured 2026-12-02), and a predict body of that many rows sent to a mistyped
 * URL still gets its 404 rather than a 413.
 */
export const DEFAULT_CONTAINERS = 65_536;

/**
 * Likewise for strings on the routes that read no rows, whose bodies hold a few (activate's
 * note): JSON.parse of 16,384 keys of one object (`{"k0":0,…}`, 169 kB) takes 3–4 ms, of 65,536
 * 23–34 ms (`node`, median of 15, measured 2026-12-02 on the 2-core machine; 65,536 short
 * strings in an array 10 ms): a key costs more than an array as the object's key table grows.
 */
export const DEFAULT_STRINGS = 16_384;

const DEFAULT_BUDGET: JsonBudget = {
  containers: () => DEFAULT_CONTAINERS,
  refusal: (_request, _chars, budget) =>
    new NormserveError(
      'BODY_TOO_LARGE',
      `the request body holds more than ${budget} arrays and objects, the most this route reads`,
    ),
  strings: () => DEFAULT_STRINGS,
};

/** The 413 of a route that reads no rows, for a body with more strings than it reads. */
const tooManyStrings = (budget: number) =>
  new NormserveError(
    'BODY_TOO_LARGE',
    `the request body holds more than ${budget} strings and keys, the most this route reads`,
  );

/**
 * The refusal of a JSON body with more arrays and objects, or more strings, than its route's
 * budget (`config.jsonBudget`), or undefined. Counted without parsing (hasMoreContainers skips
 * strings, so a string of brackets is never held against its body; hasMoreStrings skips escaped
 * quotes), and only for a body long enough to exceed the smallest budget.
 */
export function overJsonBudget(request: FastifyRequest, body: string): NormserveError | undefined {
  if (body.length <= COUNTED_FROM_CHARS) return undefined;
  const budget = request.routeOptions.config.jsonBudget ?? DEFAULT_BUDGET;
  const limit = budget.containers(request, body.length);
  // n characters hold at most n/2 of either: a body that cannot exceed a budget is not counted.
  if (body.length > 2 * limit && hasMoreContainers(body, limit))
    return budget.refusal(request, body.length, limit);
  const strings = budget.strings(request, body.length);
  if (body.length > 2 * strings && hasMoreStrings(body, strings))
    return (budget.stringRefusal ?? tooManyStrings)(strings);
  return undefined;
}

/**
 * The input shapes a request for `request.params.name` may be read with: every available version
 * of that model (the version the route names, or the one active when the handler runs, is one of
 * them, so a version published meanwhile never makes a valid body fail). None for a name that is
 * no model's, or a model with no available version: such a body is held to DEFAULT_BUDGET, so the
 * handler answers its 404 or 503 rather than a row count judged against another model's shape.
 */
function shapesFor(registry: ModelRegistry, request: FastifyRequest): InputShape[] {
  const name = (request.params as { name?: unknown } | undefined)?.name;
  if (typeof name !== 'string' || !registry.has(name)) return [];
  const shapes: InputShape[] = [];
  for (const v of registry.get(name).versions.values())
    if (isAvailable(v)) shapes.push(inputShapeOf(v));
  return shapes;
}

/**
 * The budget of a body of at most `maxRows` samples: per sample, the most arrays it can be
 * written with (InputShape.arraysPerSample: a flat row 1, a nested [C, H, W] one 1 + C + C·H),
 * plus the envelope. The row limit alone would leave a route with a large one open (1,000,000
 * recalibration samples of [1, 8, 8] is a budget of 10 million, more than 16 MB can hold), so the
 * rows are also bounded by the body's length: a sample's `width` values take 2 characters each at
 * least (a digit and the `,` or `]` after it), so a valid body of n characters holds at most
 * n / (2·width) samples, and no more of these arrays than a valid body of its size would (a
 * 16 MB one of nested [1, 8, 8] rows: 1.3 million; of [64] rows: 131,072). Per model, not from
 * the largest loaded one: a flat 64-wide model's infer budget stays 5120 when a [3, 32, 32]
 * model is loaded beside it (whose rows may hold 100 arrays each). For a name that is no model's or has no
 * available version, DEFAULT_BUDGET. With `namedSamples` (TF Serving's predict), a sample may
 * also be one object with one key, `{"input": sample}`: one container and one string more each.
 */
function rowBudget(
  registry: ModelRegistry,
  maxRows: number,
  refuse: (why: string) => NormserveError,
  namedSamples = false,
): JsonBudget {
  const wrap = namedSamples ? 1 : 0;
  // The largest budget over the shapes the request may be read with, and the rows it allows.
  const largest = (request: FastifyRequest, chars: number) => {
    let best: { containers: number; rows: number; shape: InputShape } | undefined;
    for (const shape of shapesFor(registry, request)) {
      const rows = Math.min(maxRows, Math.floor(chars / (2 * shape.width)));
      const containers = rows * (shape.arraysPerSample + wrap) + ENVELOPE_CONTAINERS;
      if (!best || containers > best.containers) best = { containers, rows, shape };
    }
    return best;
  };
  return {
    containers: (request, chars) =>
      largest(request, chars)?.containers ?? DEFAULT_BUDGET.containers(request, chars),
    refusal: (request, chars, budget) => {
      const best = largest(request, chars);
      if (!best) return DEFAULT_BUDGET.refusal(request, chars, budget);
      const shape = `[${best.shape.shape.join(', ')}]`;
      if (best.rows < maxRows) {
        // The body's length, not the row limit, bounds it: no valid body of this size holds so
        // many arrays, so its samples are missing values. Not too large: malformed (400).
        const message = `more than ${budget} arrays and objects in ${chars} characters, more than any ${best.rows} samples of ${shape} (the most that length fits) and the request around them hold: samples are missing values (counted before parsing)`;
        return new NormserveError('INVALID_INPUT', `body: ${message}`, {
          errors: [{ path: 'body', message }],
        });
      }
      return refuse(
        `the body holds more than ${budget} arrays and objects, more than ${best.rows} samples of ${shape} and the request around them can`,
      );
    },
    strings: (request, chars) => {
      if (!namedSamples) return ENVELOPE_STRINGS;
      let rows = 0;
      for (const shape of shapesFor(registry, request))
        rows = Math.max(rows, Math.min(maxRows, Math.floor(chars / (2 * shape.width))));
      return ENVELOPE_STRINGS + rows;
    },
    stringRefusal: (budget) => rowsAreNumbers(budget, namedSamples),
  };
}

/**
 * A body of rows with more strings than their envelope holds is malformed, not too large: no
 * valid body of its length holds more (on predict the limit grows by one key per sample its
 * length could hold, no faster than the body), so splitting the batch would not help (numbers sent as
 * strings, a reviewer's case: 19 rows of them were a 413). A 400, like zod's answer to a few.
 */
function rowsAreNumbers(budget: number, namedSamples: boolean): NormserveError {
  const around = namedSamples
    ? 'names, datatypes, parameters, an input name per sample'
    : 'names, datatypes, parameters';
  const message = `more than ${budget} strings and keys: the rows' values are numbers, and the request around them (${around}) holds at most ${budget} (counted before parsing)`;
  return new NormserveError('INVALID_INPUT', `body: ${message}`, {
    errors: [{ path: 'body', message }],
  });
}

/**
 * Predict and infer: at most MAX_BATCH_SIZE rows, else 413 BATCH_TOO_LARGE. `namedSamples` for
 * TF Serving's predict, whose instances may each be `{"input": sample}`.
 */
export function predictionBudget(
  registry: ModelRegistry,
  config: Pick<ServerConfig, 'MAX_BATCH_SIZE'>,
  namedSamples = false,
): JsonBudget {
  const maxRows = config.MAX_BATCH_SIZE;
  return rowBudget(
    registry,
    maxRows,
    (why) => batchTooLarge('body', `${batchLimit(maxRows)}; ${why}`),
    namedSamples,
  );
}

/** :recalibrate: at most MAX_RECALIBRATION_SAMPLES rows, else 413 TOO_MANY_SAMPLES. */
export function recalibrationBudget(
  registry: ModelRegistry,
  config: Pick<ServerConfig, 'MAX_RECALIBRATION_SAMPLES'>,
): JsonBudget {
  const maxSamples = config.MAX_RECALIBRATION_SAMPLES;
  return rowBudget(registry, maxSamples, (why) => tooManySamples(maxSamples, why));
}
