import { z } from 'zod';
import { Conv2d, conv2dFootprint, numelOf, pairOf, windowGeometry } from '../../nn/index.js';
import {
  defineLayer,
  imageInput,
  nonNegativeInt,
  positiveInt,
  showShape,
  sizePair,
} from './layer-definition.js';

/**
 * The most values a convolution's windows may hold per sample, in_channels × kh × kw × H_out ×
 * W_out: 2^28. They are the multiply-adds per output channel, and training lays them out (im2col,
 * float32, nn/conv2d.ts) for its whole batch (the eval executors a bounded block at a time);
 * ResNet-style layers on [64, 512, 512] or a 7×7 stem on [3, 2048, 2048] hold ~150 M. Without it
 * a config of one 31×31 kernel (961 weights) on a [1, 4096, 4096] input had the JS engine ask for
 * about 129 GB. docs/model-format.md states it.
 */
export const MAX_WINDOW_VALUES = 2 ** 28;

/**
 * nn.Conv2d with zero padding and groups = 1: [in_channels, H, W] → [out_channels, H_out, W_out].
 * Sizes are an int or [h, w], kept as written (config.json round-trips unchanged).
 */
export const conv2dLayer = defineLayer({
  type: 'conv2d',
  torch: 'nn.Conv2d',
  schema: z.strictObject({
    type: z.literal('conv2d'),
    in_channels: positiveInt,
    out_channels: positiveInt,
    kernel_size: sizePair(positiveInt),
    stride: sizePair(positiveInt).default(1),
    padding: sizePair(nonNegativeInt).default(0),
    dilation: sizePair(positiveInt).default(1),
    groups: z.literal(1, { error: 'only groups=1 is supported' }).default(1),
    bias: z.boolean().default(true),
    padding_mode: z
      .literal('zeros', { error: 'only padding_mode="zeros" is supported' })
      .default('zeros'),
  }),
  outputShape(spec, input, ctx) {
    const [c, h, w] = imageInput('conv2d', input, ctx);
    if (spec.in_channels !== c) {
      ctx.fail(
        `in_channels ${spec.in_channels} does not match the ${c} channels of ${showShape(input)}`,
      );
    }
    const g = windowGeometry(
      c,
      h,
      w,
      pairOf(spec.kernel_size),
      pairOf(spec.stride),
      pairOf(spec.padding),
      pairOf(spec.dilation),
    );
    if (g.outH < 1 || g.outW < 1) {
      ctx.fail(
        `kernel_size ${JSON.stringify(spec.kernel_size)} is larger than the padded input ${showShape(input)}`,
      );
    }
    const [kh, kw] = pairOf(spec.kernel_size);
    const windowValues = c * kh * kw * g.outH * g.outW;
    if (windowValues > MAX_WINDOW_VALUES) {
      ctx.fail(
        `its windows hold ${windowValues} values per sample (in_channels × kernel × output positions), more than the limit of ${MAX_WINDOW_VALUES}`,
      );
    }
    return [spec.out_channels, g.outH, g.outW];
  },
  state: (spec) => [
    {
      name: 'weight',
      kind: 'parameter',
      shape: [spec.out_channels, spec.in_channels, ...pairOf(spec.kernel_size)],
    },
    ...(spec.bias
      ? [{ name: 'bias', kind: 'parameter', shape: [spec.out_channels] } as const]
      : []),
  ],
  build: (spec, ctx) =>
    new Conv2d(
      {
        inChannels: spec.in_channels,
        outChannels: spec.out_channels,
        kernelSize: pairOf(spec.kernel_size),
        stride: pairOf(spec.stride),
        padding: pairOf(spec.padding),
        dilation: pairOf(spec.dilation),
        bias: spec.bias,
      },
      ctx.rngs.init,
    ),
  /** Its work arrays and products: conv2dFootprint, next to the code that allocates them. */
  trainingFootprint: (spec, { output, batchSize, evalRows }) =>
    conv2dFootprint({
      width: spec.in_channels * numelOf(pairOf(spec.kernel_size)),
      outChannels: spec.out_channels,
      positions: numelOf(output) / spec.out_channels,
      batchSize,
      evalRows,
    }),
});
