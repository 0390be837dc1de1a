import { z } from 'zod';
import { Conv2d, pairOf, windowGeometry } from '../../nn/index.js';
import {
  defineLayer,
  imageInput,
  nonNegativeInt,
  positiveInt,
  showShape,
  sizePair,
} from './layer-definition.js';

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
});
