import type { Task } from '../checkpoint/index.js';

/**
 * Names of a model's input and output tensors, shared by the Open Inference Protocol routes and
 * the ONNX export, so that a client reads the same names from both.
 */
export const INPUT_TENSOR = 'input';
/** Softmax of the logits (classification only). */
export const PROBABILITIES_TENSOR = 'probabilities';
/** Predicted label per row (classification only). */
export const LABEL_TENSOR = 'label';

/** The model's raw outputs: logits for classification, the predictions themselves for regression. */
export const rawOutputTensor = (task: Task): string =>
  task === 'classification' ? 'logits' : 'predictions';
