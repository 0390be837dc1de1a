/**
 * The activation codes shared by every kernel (the plain-JS kernels of inference/ and the
 * WebAssembly kernels of nn/wasm/): codes instead of closures keep the inner loops monomorphic,
 * and one table keeps the JavaScript and WebAssembly sides in agreement.
 */
export const ACTIVATION_CODES = {
  none: 0,
  relu: 1,
  leaky_relu: 2,
  gelu: 3,
  gelu_tanh: 4,
  tanh: 5,
  sigmoid: 6,
  selu: 7,
} as const;
