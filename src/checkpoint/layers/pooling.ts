import { z } from 'zod';
import {
  AdaptiveAvgPool2d,
  AvgPool2d,
  MaxPool2d,
  type Pair,
  pairOf,
  windowGeometry,
} from '../../nn/index.js';
import {
  defineLayer,
  imageInput,
  nonNegativeInt,
  positiveInt,
  type Shape,
  type ShapeContext,
  showShape,
  sizePair,
} from './layer-definition.js';

/** Fields of MaxPool2d and AvgPool2d: stride defaults to the kernel size (`null` too, as None). */
const windowFields = {
  kernel_size: sizePair(positiveInt),
  stride: sizePair(positiveInt).nullable().optional(),
  padding: sizePair(nonNegativeInt).default(0),
  ceil_mode: z.literal(false, { error: 'only ceil_mode=false is supported' }).default(false),
};

interface WindowSpec {
  kernel_size: number | [number, number];
  stride?: number | [number, number] | null | undefined;
  padding: number | [number, number];
}

const strideOf = (spec: WindowSpec): Pair => pairOf(spec.stride ?? spec.kernel_size);

function poolOutputShape(type: string, spec: WindowSpec, input: Shape, ctx: ShapeContext): Shape {
  const [c, h, w] = imageInput(type, input, ctx);
  const kernel = pairOf(spec.kernel_size);
  const padding = pairOf(spec.padding);
  if (padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2) {
    ctx.fail(
      `padding ${JSON.stringify(spec.padding)} must be at most half of kernel_size ${JSON.stringify(spec.kernel_size)}`,
    );
  }
  const g = windowGeometry(c, h, w, kernel, strideOf(spec), padding);
  if (g.outH < 1 || g.outW < 1) {
    ctx.fail(
      `kernel_size ${JSON.stringify(spec.kernel_size)} is larger than the padded input ${showShape(input)}`,
    );
  }
  return [c, g.outH, g.outW];
}

/** nn.MaxPool2d (dilation 1, ceil_mode=False). */
export const maxPool2dLayer = defineLayer({
  type: 'maxpool2d',
  torch: 'nn.MaxPool2d',
  schema: z.strictObject({
    type: z.literal('maxpool2d'),
    ...windowFields,
    dilation: z.literal(1, { error: 'only dilation=1 is supported' }).default(1),
  }),
  outputShape: (spec, input, ctx) => poolOutputShape('maxpool2d', spec, input, ctx),
  build: (spec) =>
    new MaxPool2d({
      kernelSize: pairOf(spec.kernel_size),
      stride: strideOf(spec),
      padding: pairOf(spec.padding),
    }),
});

/** nn.AvgPool2d (ceil_mode=False, divisor_override=None). */
export const avgPool2dLayer = defineLayer({
  type: 'avgpool2d',
  torch: 'nn.AvgPool2d',
  schema: z.strictObject({
    type: z.literal('avgpool2d'),
    ...windowFields,
    count_include_pad: z.boolean().default(true),
    divisor_override: z.null({ error: 'only divisor_override=null is supported' }).default(null),
  }),
  outputShape: (spec, input, ctx) => poolOutputShape('avgpool2d', spec, input, ctx),
  build: (spec) =>
    new AvgPool2d({
      kernelSize: pairOf(spec.kernel_size),
      stride: strideOf(spec),
      padding: pairOf(spec.padding),
      countIncludePad: spec.count_include_pad,
    }),
});

/** nn.AdaptiveAvgPool2d: [C, H, W] → [C, h, w] for any H, W. */
export const adaptiveAvgPool2dLayer = defineLayer({
  type: 'adaptive_avgpool2d',
  torch: 'nn.AdaptiveAvgPool2d',
  schema: z.strictObject({
    type: z.literal('adaptive_avgpool2d'),
    output_size: sizePair(positiveInt),
  }),
  outputShape(spec, input, ctx) {
    const [c] = imageInput('adaptive_avgpool2d', input, ctx);
    const [h, w] = pairOf(spec.output_size);
    return [c, h, w];
  },
  build: (spec) => new AdaptiveAvgPool2d({ outputSize: pairOf(spec.output_size) }),
});
