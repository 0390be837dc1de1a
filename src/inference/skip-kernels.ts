import { activate } from './kernels.js';

/** out[i] = act(x[i] + skip[i]), the sum rounded to float32 first (PyTorch's add, then relu). */
export function addSkipKernel(
  x: Float64Array,
  skip: Float64Array,
  count: number,
  act: number,
  slope: number,
  out: Float64Array,
): void {
  for (let i = 0; i < count; i++) out[i] = activate(act, slope, Math.fround(x[i]! + skip[i]!));
}
