/** The engines that can run a compiled plan: wasm (WebAssembly SIMD) and js (the reference). */
export const ENGINES = ['wasm', 'js'] as const;
export type EngineName = (typeof ENGINES)[number];
