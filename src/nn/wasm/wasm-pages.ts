/**
 * WebAssembly's page: a linear memory is sized and grown in pages of 64 KiB (the spec's fixed
 * size), both the training kernels' (wasm-kernels.ts) and the inference engine's.
 */
export const WASM_PAGE_BYTES = 65536;

/** The most pages a wasm32 memory can have: 4 GiB, the limit of a 32-bit address. */
export const WASM32_MAX_PAGES = 65536;

/**
 * `n` rounded up to a multiple of `to`: by default 64 bytes, a cache line, where every block of
 * the training kernels' memory and every region of the engine's starts.
 */
export const align = (n: number, to = 64): number => Math.ceil(n / to) * to;
