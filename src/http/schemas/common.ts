import { z } from 'zod';
import { checkBatchSize, checkFiniteOutputs, reportsFirst } from '../../service/index.js';
import { LIMITS } from './limits.js';

/** Defined with the inference use case (gRPC applies them too); re-exported for the routes. */
export { checkBatchSize, checkFiniteOutputs };

/** The largest float32, 3.4028234663852886e38: the engine stores every feature as float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;
export const FLOAT32_RANGE_MESSAGE = `outside the float32 range (|x| ≤ ${FLOAT32_MAX})`;

/**
 * A finite JSON number within the float32 range; NaN/Infinity cannot be written in JSON (1e999
 * parses to Infinity and is refused), strings/null/booleans are refused, and so is 1e39, which
 * would become Infinity as float32 and turn every output into NaN.
 */
export const finiteNumber = z
  .number({ error: 'expected a finite number' })
  .min(-FLOAT32_MAX, FLOAT32_RANGE_MESSAGE)
  .max(FLOAT32_MAX, FLOAT32_RANGE_MESSAGE);

const ROW_MESSAGE = 'expected an array of numbers (one row)';
const ROWS_MESSAGE = 'expected an array of rows';

/** Rows of finite float32 numbers, as zod checks them (and the OpenAPI document shows them). */
const numberRows = z.array(z.array(finiteNumber, { error: ROW_MESSAGE }), { error: ROWS_MESSAGE });

/**
 * `rows` with at most LIMITS.errorLocations issues. zod reports every bad value, so a body of
 * 4096 rows of strings would build 262,144 issues (300 MB, and a problem document twenty times the
 * body). A first stage counts the bad values and names the first ones with zod's own messages (and
 * how many more there are, when they do not fit); the pipe then skips `rows`, which only ever
 * parses rows of good values. The first stage accepts whatever `rows` accepts, so the compiled
 * fast check is `rows`' (reportsFirst); it is documented as `rows` for the OpenAPI document.
 */
function cappedIssues<T extends z.ZodType<number[][], number[][]>>(rows: T) {
  const { $schema: _, ...documented } = z.toJSONSchema(rows, { io: 'input' });
  const walk = (value: unknown[], ctx: z.RefinementCtx) => {
    const found: { path: number[]; message: string }[] = [];
    let bad = 0;
    const report = (path: number[], v: unknown, message?: string) => {
      if (bad++ < LIMITS.errorLocations)
        found.push({
          path,
          message: message ?? finiteNumber.safeParse(v).error?.issues[0]?.message ?? 'invalid',
        });
    };
    for (let r = 0; r < value.length; r++) {
      const row: unknown = value[r];
      if (!Array.isArray(row)) {
        report([r], row, ROW_MESSAGE);
        continue;
      }
      for (let c = 0; c < row.length; c++) {
        const v: unknown = row[c];
        if (!(typeof v === 'number' && Math.abs(v) <= FLOAT32_MAX)) report([r, c], v);
      }
    }
    const listed = bad > LIMITS.errorLocations ? LIMITS.errorLocations - 1 : bad;
    for (const issue of found.slice(0, listed)) ctx.addIssue({ code: 'custom', ...issue });
    if (bad > listed)
      ctx.addIssue({ code: 'custom', path: [], message: `${bad - listed} more invalid values` });
  };
  return reportsFirst(
    z.array(z.unknown(), { error: ROWS_MESSAGE }).superRefine(walk).meta(documented),
    rows,
  );
}

/** Unlabeled rows of features (recalibration); the row count is checked by the service. */
export const numberRowsSchema = () => cappedIssues(numberRows);

/**
 * Rows of features, [N, features], at least one. Without `maxRows` and `width` the row count and
 * the feature count are left to the route (see checkBatchSize, checkRowWidths), so the schema, and
 * the OpenAPI document made from it, do not depend on the configuration or the model; with them it
 * is the schema of one model's requests (compiled once per model for the fast path).
 */
export function rowsSchema(maxRows?: number, width?: number) {
  const row = z.array(finiteNumber, { error: ROW_MESSAGE });
  const rows = z
    .array(width === undefined ? row : row.length(width, `expected ${width} values`), {
      error: ROWS_MESSAGE,
    })
    .min(1, 'at least one row is required');
  return cappedIssues(
    maxRows === undefined
      ? rows
      : rows.max(maxRows, `at most ${maxRows} rows per request (MAX_BATCH_SIZE)`),
  );
}

/** A query-string flag spelled exactly `true` or `false`, absent = `defaultValue`, as a boolean. */
export const queryFlag = (defaultValue: 'true' | 'false') =>
  z
    .enum(['true', 'false'])
    .default(defaultValue)
    .transform((v) => v === 'true');

export const modelNameParam = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'a model name: letters, digits, ".", "_", "-"')
  .meta({ description: 'Model name (a directory of the model repository)', example: 'digits' });

export const versionParam = z
  .string()
  .regex(/^[1-9][0-9]{0,14}$/, 'a positive integer')
  .transform(Number)
  .meta({ description: 'Model version (a positive integer)', example: '1' });

export const problemSchema = z
  .object({
    type: z.string().meta({ example: 'urn:normserve:problem:invalid-input' }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string(),
    code: z.string().meta({ description: 'Stable error code from the catalogue (docs/errors.md)' }),
    error: z.string().meta({
      description:
        'The message, under the name TF Serving and Open Inference Protocol clients read',
    }),
    errors: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .meta({ description: 'For validation errors: each offending place' }),
    request_id: z.string().meta({
      description: 'The request id, as in the X-Request-Id response header and the log line',
    }),
  })
  .meta({
    id: 'Problem',
    description: 'RFC 9457 problem details (application/problem+json)',
    examples: [
      {
        type: 'urn:normserve:problem:invalid-input',
        title: 'Invalid input',
        status: 400,
        detail: 'instances[3][17]: expected a finite number',
        instance: '/v1/models/digits:predict',
        code: 'INVALID_INPUT',
        error: 'instances[3][17]: expected a finite number',
        errors: [{ path: 'instances[3][17]', message: 'expected a finite number' }],
        request_id: '08c8e3e7-e7c3-4c96-a9f8-202e0877f408',
      },
    ],
  });

/** Error responses every route may give, for the OpenAPI document. */
export const errorResponses = {
  400: problemSchema.describe('Invalid input or malformed JSON'),
  404: problemSchema.describe('Unknown model, version or route'),
  413: problemSchema.describe('Body larger than BODY_LIMIT_BYTES'),
  415: problemSchema.describe('Content-Type other than application/json'),
} as const;

/** Error responses of the inference routes, where 413 also means too many rows. */
export const inferenceErrorResponses = {
  ...errorResponses,
  413: problemSchema.describe(
    'Body larger than BODY_LIMIT_BYTES (BODY_TOO_LARGE), or more rows than MAX_BATCH_SIZE (BATCH_TOO_LARGE)',
  ),
} as const;
