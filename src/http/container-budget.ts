import type { FastifyRequest } from 'fastify';
import { NormserveError } from '../errors/index.js';
import {
  batchLimit,
  batchTooLarge,
  type InputShape,
  inputShapeOf,
  isAvailable,
  type ModelRegistry,
  type ServerConfig,
  tooManySamples,
} from '../service/index.js';
import { hasMoreContainers } from './json-containers.js';

/**
 * How many arrays and objects a route's JSON body may hold, counted before it is parsed: V8's
 * JSON.parse builds every one of them, and a 16 MB body of 5.6 million empty arrays held the
 * event loop 1.3–2 s (`{}` longer) before any limit could look at it, where 8 million zeros take
 * 170 ms. A route declares its budget in its options (`config.jsonContainers`); the others get
 * DEFAULT_BUDGET.
 */
export interface ContainerBudget {
  /** The most arrays and objects a valid body of `chars` characters holds on this request. */
  containers(request: FastifyRequest, chars: number): number;
  /** The route's 413 for a body that holds more than `budget`. */
  refusal(request: FastifyRequest, chars: number, budget: number): NormserveError;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    jsonContainers?: ContainerBudget;
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
 * A text of n characters holds at most n/2 arrays and objects (`[]`), and every budget is at
 * least the envelope: a body of at most this many characters cannot exceed any, and is not
 * counted (nor its route's budget looked up): a 1-row digits prediction is about 200.
 */
const COUNTED_FROM_CHARS = 2 * ENVELOPE_CONTAINERS;

/**
 * The budget of routes that read no rows (activate's `{ "note": … }`, and the 404s and 405s,
 * whose bodies Fastify parses too): a fixed one rather than none. 65,536 arrays and objects parse
 * in 7 ms (`node`, measured 2026-12-02), and a predict body of that many rows sent to a mistyped
 * URL still gets its 404 rather than a 413.
 */
export const DEFAULT_CONTAINERS = 65_536;

const DEFAULT_BUDGET: ContainerBudget = {
  containers: () => DEFAULT_CONTAINERS,
  refusal: (_request, _chars, budget) =>
    new NormserveError(
      'BODY_TOO_LARGE',
      `the request body holds more than ${budget} arrays and objects, the most this route reads`,
    ),
};

/**
 * The 413 of a JSON body with more arrays and objects than its route's budget
 * (`config.jsonContainers`), or undefined. Counted without parsing (hasMoreContainers:
 * strings skipped, so a string of brackets is never held against its body), and only for a body
 * long enough to pass the smallest budget.
 */
export function overContainerBudget(
  request: FastifyRequest,
  body: string,
): NormserveError | undefined {
  if (body.length <= COUNTED_FROM_CHARS) return undefined;
  const budget = request.routeOptions.config.jsonContainers ?? DEFAULT_BUDGET;
  const limit = budget.containers(request, body.length);
  // n characters hold at most n/2 of them: a body that cannot exceed the budget is not counted.
  if (body.length <= 2 * limit) return undefined;
  if (!hasMoreContainers(body, limit)) return undefined;
  return budget.refusal(request, body.length, limit);
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
 * the largest loaded one: a flat 64-wide model's predict budget stays 5120 when a [3, 32, 32]
 * model is loaded beside it (whose rows may hold 100 arrays each). For a name that is no model's or has no
 * available version, DEFAULT_BUDGET.
 */
function rowBudget(
  registry: ModelRegistry,
  maxRows: number,
  refuse: (why: string) => NormserveError,
): ContainerBudget {
  // The largest budget over the shapes the request may be read with, and the rows it allows.
  const largest = (request: FastifyRequest, chars: number) => {
    let best: { containers: number; rows: number; shape: InputShape } | undefined;
    for (const shape of shapesFor(registry, request)) {
      const rows = Math.min(maxRows, Math.floor(chars / (2 * shape.width)));
      const containers = rows * shape.arraysPerSample + ENVELOPE_CONTAINERS;
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
  };
}

/** Predict and infer: at most MAX_BATCH_SIZE rows, else 413 BATCH_TOO_LARGE. */
export function predictionBudget(
  registry: ModelRegistry,
  config: Pick<ServerConfig, 'MAX_BATCH_SIZE'>,
): ContainerBudget {
  const maxRows = config.MAX_BATCH_SIZE;
  return rowBudget(registry, maxRows, (why) =>
    batchTooLarge('body', `${batchLimit(maxRows)}; ${why}`),
  );
}

/** :recalibrate: at most MAX_RECALIBRATION_SAMPLES rows, else 413 TOO_MANY_SAMPLES. */
export function recalibrationBudget(
  registry: ModelRegistry,
  config: Pick<ServerConfig, 'MAX_RECALIBRATION_SAMPLES'>,
): ContainerBudget {
  const maxSamples = config.MAX_RECALIBRATION_SAMPLES;
  return rowBudget(registry, maxSamples, (why) => tooManySamples(maxSamples, why));
}
