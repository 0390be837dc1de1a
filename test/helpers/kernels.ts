import {
  createKernels,
  type Kernels,
  type Module,
  type Parameter,
  referenceKernels,
} from '../../src/nn/index.js';

/**
 * The training kernels (nn/kernels.ts) the layer tests — PyTorch goldens and gradient checks —
 * run their modules and optimizers on: the WebAssembly SIMD kernels, the training job's default,
 * unless KERNELS=js, which the js-kernels project of vitest.config.ts sets to run the same tests
 * again on the JavaScript reference. One wasm instance per test file (its memory is never freed;
 * the modules of these tests are small).
 */
export const TEST_KERNELS: Kernels =
  process.env.KERNELS === 'js' ? referenceKernels : wasmKernels();

/** The wasm kernels, or a failure: a silent fallback to the reference would test it twice. */
function wasmKernels(): Kernels {
  const { kernels, fallback } = createKernels('wasm');
  if (fallback !== undefined) throw new Error(`the wasm kernels cannot run here: ${fallback}`);
  return kernels;
}

/** Runs `module` (and its sub-modules) on the test kernels; returns it. */
export function onTestKernels<M extends Module>(module: M): M {
  return module.useKernels(TEST_KERNELS);
}

/** Moves bare parameters (an optimizer test's) to the test kernels; returns them. */
export function adoptParameters<P extends Parameter[]>(params: P): P {
  for (const p of params) TEST_KERNELS.adopt(p);
  return params;
}
