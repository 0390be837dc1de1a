export { batchNormAffine, compileNetwork } from './compile.js';
export { CompiledModel } from './compiled-model.js';
export type { Activation, CompiledPlan, LayerFate, PlanStep } from './plan.js';
export { PlanExecutor } from './plan-executor.js';
