export { ACTIVATION_CODES } from './activation-codes.js';
export { CONV, convSizes, convWat, writeConvDescriptor } from './conv-wat.js';
export { elementwiseWat } from './elementwise-wat.js';
export * from './gemm-wat.js';
export { gemm64Wat, NR64, packedBytes64, packWeight64 } from './gemm64-wat.js';
export { POOL_WINDOW_BYTES, poolTableBytes, poolWat, writePoolTable } from './pool-wat.js';
export { residualWat } from './residual-wat.js';
export { softmaxWat } from './softmax-wat.js';
export { statisticsWat } from './statistics-wat.js';
export { trainingModuleText } from './training-module.js';
export { expWat, vectorMathWat } from './vector-math-wat.js';
export {
  WASM_TRAINING_MEMORY_BYTES,
  WasmKernels,
  type WasmRunFrame,
  type WasmTrainingBytes,
  type WasmTrainingLayout,
  wasmBlockBytes,
  wasmTrainingBytes,
} from './wasm-kernels.js';
export { align, WASM_PAGE_BYTES, WASM32_MAX_PAGES } from './wasm-pages.js';
export {
  detectWasmSupport,
  WASM_PROBES,
  type WasmSupport,
  wasmRuntimeUnsupportedReason,
} from './wasm-support.js';
export { assembleWat, WatError } from './wat-assembler.js';
export { locals, range, splat } from './wat-text.js';
