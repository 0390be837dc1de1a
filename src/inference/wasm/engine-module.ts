import {
  assembleWat,
  convWat,
  elementwiseWat,
  expWat,
  gemm64Wat,
  gemmWat,
  poolWat,
  residualWat,
  softmaxWat,
  statisticsWat,
  vectorMathWat,
  WASM32_MAX_PAGES,
} from '../../nn/wasm/index.js';
import { ENGINE_BINARIES } from './engine-binaries.js';
import { ALL_PARTS, type EngineParts, programWat } from './program-wat.js';

/** Largest memory the module accepts (64 KiB pages: 4 GiB, wasm32's limit). */
export const MAX_PAGES = WASM32_MAX_PAGES;

/**
 * The engine's module as text: one shared memory imported from the host (so the calling thread
 * and the helper threads run on the same weights), the GEMM, the float64-accumulating GEMM of
 * statistics plans and the statistics taps' channel sums, the plan interpreter and the helpers'
 * loop, the classifiers' softmax, and the `parts` a plan needs: the element-wise steps and their
 * activations; convolution, pooling and the residual add. `relaxed` uses relaxed SIMD's fused
 * multiply-add in the GEMM's inner loop.
 */
export function engineModuleText(relaxed: boolean, parts: EngineParts = ALL_PARTS): string {
  const elementwise = parts.elementwise || parts.cnn;
  return `(module
  (import "env" "memory" (memory 1 ${MAX_PAGES} shared))
  ${expWat()}
  ${softmaxWat()}
  ${elementwise ? vectorMathWat() : ''}
  ${elementwise ? elementwiseWat() : ''}
  ${gemmWat(relaxed, { rowBias: parts.cnn })}
  ${elementwise ? gemm64Wat() : ''}
  ${statisticsWat()}
  ${parts.cnn ? [convWat(), poolWat(), residualWat()].join('\n') : ''}
  ${programWat(parts)}
)`;
}

/** Every variant of the module: relaxed FMA or not × the parts (cnn brings elementwise along). */
export const ENGINE_VARIANTS: readonly { relaxed: boolean; parts: EngineParts }[] = [
  false,
  true,
].flatMap((relaxed) => [
  { relaxed, parts: { elementwise: false, cnn: false } },
  { relaxed, parts: { elementwise: true, cnn: false } },
  { relaxed, parts: { elementwise: true, cnn: true } },
]);

/** The name of a module variant (the same for parts that give the same text). */
export const engineVariantKey = (relaxed: boolean, parts: EngineParts): string =>
  `${relaxed}:${parts.elementwise || parts.cnn}:${parts.cnn}`;

/** The module's bytes: assembled from its text, as tools/generate-engine-binaries.ts does. */
export const assembleEngine = (relaxed: boolean, parts: EngineParts = ALL_PARTS): Uint8Array =>
  assembleWat(engineModuleText(relaxed, parts));

/** Node's Buffer when the host has it (a native decoder), looked up without importing node:*. */
const nodeBuffer = (
  globalThis as { Buffer?: { from(text: string, encoding: 'base64'): Uint8Array } }
).Buffer;

/**
 * The bytes of base64 text: natively where the host offers it (Node's Buffer); else through atob,
 * whose one-char-at-a-time copy loop runs cold, in V8's interpreter, at a model's first load.
 */
function decodeBase64(text: string): Uint8Array {
  if (nodeBuffer) return nodeBuffer.from(text, 'base64');
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

const compiled = new Map<string, WebAssembly.Module>();

/**
 * The compiled engine module, compiled once per process, variant and set of parts (every part by
 * default). Its bytes come assembled ahead of time (engine-binaries.ts, generated from the same
 * text; a test fails when they differ from assembling it now), so that a model's first load does
 * not spend its budget in the assembler: a cold assembly took 20–50 ms of CPU in a fresh process,
 * most of the 50 ms load budget.
 */
export function engineModule(relaxed: boolean, parts: EngineParts = ALL_PARTS): WebAssembly.Module {
  const key = engineVariantKey(relaxed, parts);
  let module = compiled.get(key);
  if (!module) {
    const prebuilt = ENGINE_BINARIES[key];
    const bytes = prebuilt ? decodeBase64(prebuilt) : assembleEngine(relaxed, parts);
    module = new WebAssembly.Module(bytes);
    compiled.set(key, module);
  }
  return module;
}

export interface EngineExports {
  run(
    program: number,
    input: number,
    output: number,
    r0: number,
    r1: number,
    scratch: number,
  ): void;
  pack_b(src: number, kStride: number, nStride: number, k: number, n: number, dst: number): void;
  gemm: GemmFunction;
  /** The GEMM with the bias per row of C (modules with the cnn part). */
  gemm_rowbias: GemmFunction;
  /** conv2d(descriptor, src, dst, rows, slope, tmp, scratch): see nn/wasm/conv-wat.ts. */
  conv2d(
    descriptor: number,
    src: number,
    dst: number,
    rows: number,
    slope: number,
    tmp: number,
    scratch: number,
  ): void;
  act_pass(src: number, dst: number, count: number, code: number, slope: number): void;
  affine(
    src: number,
    dst: number,
    rows: number,
    features: number,
    scale: number,
    shift: number,
    code: number,
    slope: number,
  ): void;
  layernorm(
    src: number,
    dst: number,
    rows: number,
    features: number,
    eps: number,
    gamma: number,
    beta: number,
    code: number,
    slope: number,
  ): void;
  serve(control: number, program: number, input: number, output: number, scratch: number): void;
  /** softmax(src, dst, rows, width): see nn/wasm/softmax-wat.ts. */
  softmax(src: number, dst: number, rows: number, width: number): void;
  /** Σ(x − K), Σ(x − K)² per channel, K the f64 shifts at `shift` (nn/wasm/statistics-wat.ts). */
  channel_sums(
    src: number,
    rows: number,
    width: number,
    channels: number,
    acc: number,
    shift: number,
  ): void;
  /** channel_sums, then v < 0 ? v·slope : v in place (nn/wasm/statistics-wat.ts). */
  channel_sums_act(
    src: number,
    rows: number,
    width: number,
    channels: number,
    acc: number,
    shift: number,
    slope: number,
  ): void;
}

/**
 * C = A·B + bias, then v < 0 ? v·slope : v (slope 1: identity, −0: ReLU): see gemm-wat.ts. All
 * addresses and strides in bytes; tmp: 128 bytes of scratch.
 */
export type GemmFunction = (
  m: number,
  n: number,
  k: number,
  a: number,
  lda: number,
  b: number,
  bias: number,
  c: number,
  ldc: number,
  slope: number,
  tmp: number,
) => void;

export function instantiateEngine(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
): EngineExports {
  return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as EngineExports;
}
