import { z } from 'zod';
import { Linear, type ProductFootprint } from '../../nn/index.js';
import { defineLayer, OUTPUT_AND_INPUT_GRAD, positiveInt, showShape } from './layer-definition.js';
import { f32Bytes, runFrame } from './training-footprint.js';

/** nn.Linear on a flat input: [in_features] → [out_features]. */
export const linearLayer = defineLayer({
  type: 'linear',
  torch: 'nn.Linear',
  schema: z.strictObject({
    type: z.literal('linear'),
    in_features: positiveInt,
    out_features: positiveInt,
    bias: z.boolean().default(true),
  }),
  outputShape(spec, input, ctx) {
    if (input.length !== 1) {
      ctx.fail(
        `linear needs a flat input [features], got ${showShape(input)}; add a flatten layer before it`,
      );
    }
    if (spec.in_features !== input[0])
      ctx.fail(`in_features ${spec.in_features} does not match the previous width ${input[0]}`);
    return [spec.out_features];
  },
  state: (spec) => [
    { name: 'weight', kind: 'parameter', shape: [spec.out_features, spec.in_features] },
    ...(spec.bias
      ? [{ name: 'bias', kind: 'parameter', shape: [spec.out_features] } as const]
      : []),
  ],
  build: (spec, ctx) =>
    new Linear(
      { inFeatures: spec.in_features, outFeatures: spec.out_features, bias: spec.bias },
      ctx.rngs.init,
    ),
  targetScale: (spec) => (spec.bias ? 'absorbs' : 'no-bias'),
  stepArrays: OUTPUT_AND_INPUT_GRAD,
  /**
   * nn/linear.ts on the kernels: W [out, fan-in] packed by the forward and input-gradient
   * products, the input copied in when it lives in an ordinary array; db, the channel sums of dY,
   * into a float64 array; an evaluation's chunk of rows copied in and out. The weight-gradient
   * product is counted with the batch's rows.
   */
  trainingFootprint(spec, { output, batchSize, evalRows, inputInMemory, gradientInMemory }) {
    const [out, fanIn] = [spec.out_features, spec.in_features];
    const product = (k: number, n: number, bias: boolean, a = 0, c = 0): ProductFootprint => ({
      k,
      n,
      bias,
      a,
      c,
      c64: false,
    });
    return {
      workArrays: [],
      forward: [product(fanIn, out, true, inputInMemory ? 0 : batchSize * fanIn)],
      backward: [
        ...(spec.bias
          ? [runFrame(gradientInMemory ? 0 : f32Bytes(batchSize, output), out * 8)]
          : []),
        product(batchSize, fanIn, false),
        product(out, fanIn, false),
      ],
      eval: evalRows.map((chunk) => [product(fanIn, out, true, chunk * fanIn, chunk * out)]),
    };
  },
});
