import type { Task } from '../checkpoint/index.js';
import { quote } from '../errors/index.js';

/**
 * Names of a model's input and output tensors, shared by the Open Inference Protocol routes and
 * the ONNX export, so that a client reads the same names from both.
 */
export const INPUT_TENSOR = 'input';
/** Why an input name is refused, wherever a client names inputs (OIP tensors, TF Serving's named forms). */
export const unknownInputMessage = (name: string): string =>
  `unknown input ${quote(name)}; the model's input is "${INPUT_TENSOR}"`;
/** Softmax of the logits (classification only). */
export const PROBABILITIES_TENSOR = 'probabilities';
/** Predicted label per row (classification only). */
export const LABEL_TENSOR = 'label';

/** The model's raw outputs: logits for classification, the predictions themselves for regression. */
export const rawOutputTensor = (task: Task): string =>
  task === 'classification' ? 'logits' : 'predictions';
