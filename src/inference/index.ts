export {
  detectWasmSupport,
  type WasmSupport,
  wasmRuntimeUnsupportedReason,
} from '../nn/wasm/index.js';
export {
  batchNormClip,
  batchNormInputsOf,
  batchNormMoments,
  batchNormShift,
  batchNormTaps,
  clippedBatchNormTaps,
  type InputMoments,
  type RunningMoments,
} from './batch-norm-inputs.js';
export { centredPlan, inputTransformStep } from './centred-plan.js';
export {
  batchNormAffine,
  type CompileOptions,
  compileNetwork,
  compilingNetwork,
} from './compile.js';
export type { FoldStatistics } from './compile-rules/index.js';
export { CENTRE_SHIFT, compileRules } from './compile-rules/index.js';
export { CompiledModel, type EngineOptions, REFERENCE_SLICE_FLOPS } from './compiled-model.js';
export {
  createExecutor,
  creatingExecutor,
  type ExecutorOptions,
  resolveEngine,
} from './create-executor.js';
export { ENGINES, type EngineName } from './engine-name.js';
export type { Executor } from './executor.js';
export {
  exportOnnx,
  ONNX_BATCH_DIM,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  type OnnxExportOptions,
} from './onnx-export.js';
export type { Activation, BatchNormInput, CompiledPlan, LayerFate, PlanStep } from './plan.js';
export { stepOutputWidth } from './plan.js';
export { PlanExecutor } from './plan-executor.js';
export { planFlopsPerRow, stepFlopsPerRow } from './plan-flops.js';
export {
  ChannelSums,
  M2_RELATIVE_TOLERANCE,
  type StatisticsProbe,
  type StatisticsTap,
  type TapClip,
  type TapPoint,
  tensorChannels,
} from './statistics-probe.js';
export { WARM_UP_MAX_FLOPS, warmingUp } from './warm-up.js';
export type { HelperHandle, HelperInit, HelperSpawner } from './wasm/helper-pool.js';
export { WasmExecutor } from './wasm/wasm-executor.js';
