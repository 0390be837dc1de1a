export { batchNormAffine, compileNetwork } from './compile.js';
export { CompiledModel } from './compiled-model.js';
export {
  exportOnnx,
  ONNX_BATCH_DIM,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  type OnnxExportOptions,
} from './onnx-export.js';
export type { Activation, CompiledPlan, LayerFate, PlanStep } from './plan.js';
export { PlanExecutor } from './plan-executor.js';
