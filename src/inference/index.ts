export { batchNormAffine, compileNetwork } from './compile.js';
export { compileRules } from './compile-rules/index.js';
export { CompiledModel } from './compiled-model.js';
export type { Activation, CompiledPlan, LayerFate, PlanStep } from './plan.js';
export { stepOutputWidth } from './plan.js';
export { PlanExecutor } from './plan-executor.js';
