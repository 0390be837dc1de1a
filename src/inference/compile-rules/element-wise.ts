import type { GELU, LeakyReLU, Module } from '../../nn/index.js';
import type { Activation } from '../plan.js';
import type { CompileRule } from './compile-context.js';

/**
 * Whether the GEMM's epilogue (dense and conv2d steps) can apply `a`: the wasm engine's tells ReLU
 * from LeakyReLU(0) by the sign of the zero slope (nn/wasm/gemm-wat.ts, RELU_SLOPE = −0), so a
 * LeakyReLU of slope −0 (v·(−0) is +0, and −∞·(−0) NaN, as PyTorch gives them) runs as a step.
 */
const epilogueCanApply = (a: Activation): boolean =>
  !(a.kind === 'leaky_relu' && Object.is(a.negativeSlope, -0));

/**
 * An activation runs inside the kernel that produced its input, or as its own step; `activationOf`
 * reads the plan's activation off the module (compileRules keys each rule by its module's kind).
 */
function activationRule<M extends Module>(activationOf: (module: M) => Activation): CompileRule {
  return (module, path, ctx) => {
    const activation = activationOf(module as M);
    ctx.flush();
    const fusable = ctx.fusableProducer();
    const producer =
      fusable &&
      (epilogueCanApply(activation) || (fusable.op !== 'dense' && fusable.op !== 'conv2d'))
        ? fusable
        : undefined;
    if (producer) {
      producer.activation = activation;
      producer.layers.push(path);
      ctx.fate(path, module, 'fused_activation');
    } else {
      ctx.emit({ op: 'activation', features: ctx.width, activation, layers: [path] });
      ctx.fate(path, module, 'kernel');
    }
  };
}

export const reluRule = activationRule(() => ({ kind: 'relu' }));
export const leakyReluRule = activationRule((m: LeakyReLU) => ({
  kind: 'leaky_relu',
  negativeSlope: m.negativeSlope,
}));
export const geluRule = activationRule(
  (m: GELU): Activation => (m.approximate === 'tanh' ? { kind: 'gelu_tanh' } : { kind: 'gelu' }),
);
export const tanhRule = activationRule(() => ({ kind: 'tanh' }));
export const sigmoidRule = activationRule(() => ({ kind: 'sigmoid' }));
export const seluRule = activationRule(() => ({ kind: 'selu' }));

/** Dropout, AlphaDropout and Identity are identities in eval: nothing to run, nothing changes. */
export const removedInEvalRule: CompileRule = (module, path, ctx) => {
  ctx.fate(path, module, 'removed_in_eval');
  ctx.foldTarget = ctx.previousFoldTarget;
};
