export { ACTIVATION_CODES, type ActivationKind } from './activation-codes.js';
export { elementwiseWat } from './elementwise-wat.js';
export * from './gemm-wat.js';
export { gemm64Wat, NR64, packedBytes64, packWeight64 } from './gemm64-wat.js';
export { statisticsWat } from './statistics-wat.js';
export { vectorMathWat } from './vector-math-wat.js';
export { detectWasmSupport, type WasmSupport } from './wasm-support.js';
export { assembleWat, WatError } from './wat-assembler.js';
export { locals, range, splat } from './wat-text.js';
