/**
 * Window geometry shared by Conv2d and the pooling layers (and by the config checks and the
 * compiled plan, which must agree with them): sizes per spatial dimension [height, width].
 */
export type Pair = readonly [number, number];

/** An int or [h, w] as PyTorch's `_pair` reads it. */
export function pairOf(value: number | readonly number[]): Pair {
  return typeof value === 'number' ? [value, value] : [value[0]!, value[1]!];
}

/**
 * Output size of a sliding window along one dimension (torch.nn.Conv2d's shape formula, also
 * MaxPool2d/AvgPool2d's with ceil_mode=False):
 *   out = ⌊(in + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1.
 */
export function windowOutputSize(
  input: number,
  kernel: number,
  stride: number,
  padding: number,
  dilation = 1,
): number {
  return Math.floor((input + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1;
}

/** Everything a kernel needs to slide a window over [C, H, W] inputs. */
export interface WindowGeometry {
  channels: number;
  inH: number;
  inW: number;
  kernel: Pair;
  stride: Pair;
  padding: Pair;
  dilation: Pair;
  outH: number;
  outW: number;
}

export function windowGeometry(
  channels: number,
  inH: number,
  inW: number,
  kernel: Pair,
  stride: Pair,
  padding: Pair,
  dilation: Pair = [1, 1],
): WindowGeometry {
  return {
    channels,
    inH,
    inW,
    kernel,
    stride,
    padding,
    dilation,
    outH: windowOutputSize(inH, kernel[0], stride[0], padding[0], dilation[0]),
    outW: windowOutputSize(inW, kernel[1], stride[1], padding[1], dilation[1]),
  };
}

/**
 * The window of adaptive pooling output index `o` of `out` over `input` positions
 * (aten/src/ATen/native/AdaptiveAveragePooling.cpp): [⌊o·in/out⌋, ⌈(o + 1)·in/out⌉).
 */
export function adaptiveWindow(o: number, input: number, out: number): [number, number] {
  return [Math.floor((o * input) / out), Math.ceil(((o + 1) * input) / out)];
}
