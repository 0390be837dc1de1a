/**
 * compileAccepts against zod itself: for the schemas the prediction routes compile (the predict
 * request, per model and general; the infer request and the binary header; the gRPC message),
 * the compiled predicate accepts exactly what the schema accepts, on valid bodies, mutated ones
 * and arbitrary JSON; and the sample check of a model's input shape accepts exactly what the
 * input shape's reader (which names the errors) accepts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { modelInferRequestSchema } from '../../src/grpc/messages.js';
import {
  binaryInferHeaderSchema,
  inferRequestSchema,
} from '../../src/http/schemas/open-inference.js';
import {
  predictRequestSchema,
  predictRequestSchemaFor,
} from '../../src/http/schemas/tf-serving.js';
import { compileAccepts, InputShape } from '../../src/service/index.js';

const row = (n: number, v = 1) => Array.from({ length: n }, (_, i) => (i % 7) * v);

/** A valid value with one node replaced by `replacement`. */
function mutate(value: unknown, pick: number, replacement: unknown): unknown {
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, path: (string | number)[]) => {
    paths.push(path);
    if (Array.isArray(v)) for (const [i, x] of v.entries()) walk(x, [...path, i]);
    else if (v !== null && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(value, []);
  const path = paths[pick % paths.length]!;
  if (path.length === 0) return replacement;
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path.at(-1)!] = replacement;
  return copy;
}

const oddValues = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    null,
    '',
    '1',
    [],
    {},
    [[]],
    -0,
    1.5,
    -1,
    1e39,
    -3.4028234663852886e38,
    3.4028234663852886e38,
    3.4028235e38,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    2 ** 53,
    true,
  ),
);

function agrees(schema: z.ZodType, valid: () => unknown[]) {
  const accepts = compileAccepts(schema);
  expect(accepts).toBeDefined();
  for (const v of valid()) expect(accepts!(v), JSON.stringify(v)).toBe(true);
  fc.assert(
    fc.property(fc.constantFrom(...valid()), fc.nat(), oddValues, (base, pick, replacement) => {
      const value = mutate(base, pick, replacement);
      expect(accepts!(value), JSON.stringify(value)).toBe(schema.safeParse(value).success);
    }),
    { numRuns: 3000, seed: 11 },
  );
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
      expect(accepts!(value)).toBe(schema.safeParse(value).success);
    }),
    { numRuns: 500, seed: 12 },
  );
}

describe('compileAccepts accepts exactly what zod accepts', () => {
  it('the general predict request (OpenAPI schema)', () => {
    agrees(predictRequestSchema, () => [
      { instances: [row(64)] },
      { inputs: [row(3), row(5)], signature_name: 'serving_default' },
      // TF Serving's named forms, keyed by the model's input name.
      { instances: [{ input: row(64) }, { input: row(2) }] },
      { inputs: { input: [row(3), row(5)] } },
    ]);
  });

  it("one model's predict request: rows of exactly its width, at most MAX_BATCH_SIZE", () => {
    const schema = predictRequestSchemaFor([4], 3);
    agrees(schema, () => [
      { instances: [row(4)] },
      { inputs: [row(4), row(4), row(4)] },
      { instances: [{ input: row(4) }, { input: row(4) }] },
      { inputs: { input: [row(4), row(4), row(4)] } },
    ]);
    const accepts = compileAccepts(schema)!;
    expect(accepts({ instances: [row(4), row(4), row(4), row(4)] })).toBe(false);
    expect(accepts({ instances: [row(5)] })).toBe(false);
    expect(accepts({ instances: [row(4)], inputs: [row(4)] })).toBe(false);
    // The named forms: the model's input name only, every instance named or none, the row limit.
    expect(accepts({ instances: [{ input: row(4) }] })).toBe(true);
    expect(accepts({ instances: [{ x: row(4) }] })).toBe(false);
    expect(accepts({ instances: [{ input: row(4) }, row(4)] })).toBe(false);
    expect(accepts({ instances: [row(4), { input: row(4) }] })).toBe(false);
    expect(accepts({ instances: Array.from({ length: 4 }, () => ({ input: row(4) })) })).toBe(
      false,
    );
    expect(accepts({ inputs: { input: [row(4)], x: [row(4)] } })).toBe(false);
    expect(accepts({ inputs: { input: [row(5)] } })).toBe(false);
    expect(accepts({ instances: { input: [row(4)] } })).toBe(false);
  });

  it("a [2, 2, 3] model's predict request: samples of 12 values flat or nested [2][2][3]", () => {
    const schema = predictRequestSchemaFor([2, 2, 3], 3);
    const nested = [
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
      [
        [7, 8, 9],
        [10, 11, 12],
      ],
    ];
    agrees(schema, () => [
      { instances: [row(12)] },
      { instances: [nested, row(12), nested] },
      { inputs: [nested] },
      { instances: [{ input: nested }, { input: row(12) }] },
      { inputs: { input: [nested, row(12)] } },
    ]);
    const accepts = compileAccepts(schema)!;
    expect(accepts({ instances: [nested[0]] })).toBe(false);
    expect(accepts({ instances: [row(11)] })).toBe(false);
    expect(accepts({ instances: [[nested[0], row(6)]] })).toBe(false);
  });

  it("a sample check compiled from an input shape accepts exactly what the shape's reader accepts", () => {
    const nested = (shape: number[], v = 1): unknown =>
      shape.length === 0
        ? v
        : Array.from({ length: shape[0]! }, (_, i) => nested(shape.slice(1), v * (i + 2)));
    for (const dims of [[5], [2, 2, 3], [1, 3, 2]]) {
      const shape = new InputShape(dims);
      const accepts = compileAccepts(shape.sampleSchema())!;
      const read = (value: unknown) => {
        try {
          shape.readInstances([value], 'instances');
          return true;
        } catch {
          return false;
        }
      };
      const valid = [row(shape.width), nested(dims)];
      for (const v of valid) expect(read(v) && accepts(v), JSON.stringify(v)).toBe(true);
      fc.assert(
        fc.property(fc.constantFrom(...valid), fc.nat(), oddValues, (base, pick, replacement) => {
          const value = mutate(base, pick, replacement);
          expect(accepts(value), JSON.stringify(value)).toBe(read(value));
        }),
        { numRuns: 2000, seed: 13 },
      );
      fc.assert(
        fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
          expect(accepts(value)).toBe(read(value));
        }),
        { numRuns: 300, seed: 14 },
      );
    }
  });

  it('the infer request and the binary header', () => {
    const valid = () => [
      {
        id: 'a',
        inputs: [{ name: 'input', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }],
        outputs: [{ name: 'label', parameters: { binary_data: true } }],
        parameters: { x: 1 },
      },
      { inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data: [[1, 2]] }] },
    ];
    agrees(inferRequestSchema(), valid);
    // Strict at the top, in an input and in an output; free inside parameters.
    const accepts = compileAccepts(inferRequestSchema())!;
    const [base] = valid();
    const input = base!.inputs[0]!;
    for (const strange of [
      { ...base, extra: 1 },
      { ...base, inputs: [{ ...input, extra: 1 }] },
      { ...base, outputs: [{ name: 'label', extra: 1 }] },
    ]) {
      expect(accepts(strange), JSON.stringify(strange)).toBe(false);
      expect(inferRequestSchema().safeParse(strange).success).toBe(false);
    }
    agrees(binaryInferHeaderSchema(), () => [
      ...valid(),
      {
        inputs: [
          {
            name: 'input',
            shape: [2, 3],
            datatype: 'FP32',
            parameters: { binary_data_size: 24 },
          },
        ],
      },
    ]);
  });

  it('the gRPC ModelInferRequest as proto-loader decodes it (Buffers included)', () => {
    const accepts = compileAccepts(modelInferRequestSchema)!;
    const message = {
      model_name: 'digits',
      model_version: '',
      id: '',
      parameters: {},
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], parameters: {}, contents: null }],
      outputs: [],
      raw_input_contents: [Buffer.alloc(256)],
    };
    expect(accepts(message)).toBe(true);
    expect(accepts({ ...message, raw_input_contents: ['x'] })).toBe(false);
    expect(
      modelInferRequestSchema.safeParse({ ...message, raw_input_contents: ['x'] }).success,
    ).toBe(false);
  });

  it('several bounds of one kind: every one holds, the tightest decides (numbers and number rows)', () => {
    const values = [-6, -5, -3, 0, 4.5, 5, 7, 10, 11];
    const schemas = [
      z.number().min(0).min(-5),
      z.number().max(5).max(10),
      z.number().gt(-5).min(-5),
      z.number().min(-5).gt(-5).lt(10).max(5),
      z.array(z.number().min(0).min(-5).max(5).max(10)),
    ];
    for (const schema of schemas) {
      const accepts = compileAccepts(schema)!;
      for (const v of values) {
        const value = schema instanceof z.ZodArray ? [1, v] : v;
        expect(accepts(value), `${JSON.stringify(value)}`).toBe(schema.safeParse(value).success);
      }
    }
  });

  it('refuses to compile what it cannot mirror (transforms, defaults)', () => {
    expect(compileAccepts(z.object({ a: z.string().transform(Number) }))).toBeUndefined();
    expect(compileAccepts(z.object({ a: z.number().default(1) }))).toBeUndefined();
  });
});
