import protobuf from 'protobufjs';
import { NormserveError } from '../errors/index.js';
import { SELU_ALPHA, SELU_SCALE } from '../nn/index.js';
import { ONNX_SCHEMA } from './onnx-schema.js';
import type { Activation, CompiledPlan, PlanStep } from './plan.js';

/**
 * ONNX opset 17 (IR version 8, ONNX 1.12): the first opset with LayerNormalization as one
 * operator; Gemm, Erf, Selu, LeakyRelu and Softmax(axis) are unchanged since opset 13. Readers
 * from onnxruntime 1.12 (2022) on accept it; PyTorch 1.13 exports up to the same opset.
 */
export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;
/** The symbolic name of the batch dimension of the input and outputs. */
export const ONNX_BATCH_DIM = 'batch';

export interface OnnxExportOptions {
  /** Graph name (the model's name). */
  graphName: string;
  /** Name of the [batch, inputWidth] FP32 input. */
  inputName: string;
  /** Name of the [batch, outputWidth] FP32 output: the model's raw outputs (logits for classification). */
  outputName: string;
  /** When set, a second output of this name: softmax of the raw outputs over the last axis. */
  probabilitiesName?: string | undefined;
  /** Stored as ModelProto.model_version. */
  modelVersion?: number | undefined;
  producerVersion?: string | undefined;
  docString?: string | undefined;
  /** Stored as ModelProto.metadata_props, in this order. */
  metadata?: Readonly<Record<string, string>> | undefined;
}

const FLOAT = 1; // TensorProto.DataType.FLOAT
const ATTRIBUTE_FLOAT = 1;
const ATTRIBUTE_INT = 2;

interface NodeSpec {
  input: string[];
  output: string[];
  name: string;
  op_type: string;
  attribute: { name: string; type: number; f?: number; i?: number }[];
}

interface TensorSpec {
  name: string;
  dims: number[];
  data_type: number;
  raw_data: Uint8Array;
}

let modelType: protobuf.Type | undefined;
/** The ModelProto message type, parsed once from the schema. */
function onnxModelType(): protobuf.Type {
  modelType ??= protobuf.parse(ONNX_SCHEMA, { keepCase: true }).root.lookupType('onnx.ModelProto');
  return modelType;
}

const HOST_LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * Float32 values as little-endian bytes (ONNX raw_data is little-endian whatever the host): a view
 * of the array itself on little-endian hosts (encode copies it once into the file), else swapped.
 */
function littleEndianBytes(values: Float32Array): Uint8Array {
  if (HOST_LITTLE_ENDIAN)
    return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return bytes;
}

const floatAttribute = (name: string, f: number) => ({ name, type: ATTRIBUTE_FLOAT, f });
const intAttribute = (name: string, i: number) => ({ name, type: ATTRIBUTE_INT, i });

/** Builds the graph of a plan: nodes, initializers and value names, one step after the other. */
class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: TensorSpec[] = [];
  private readonly constants = new Map<number, string>();
  private counter = 0;

  constructor(public current: string) {}

  tensor(name: string, dims: number[], values: Float32Array): string {
    this.initializers.push({ name, dims, data_type: FLOAT, raw_data: littleEndianBytes(values) });
    return name;
  }

  /** A float32 scalar initializer, shared by every node that uses the same value. */
  scalar(value: number): string {
    let name = this.constants.get(value);
    if (name === undefined) {
      name = this.tensor(`const_${this.constants.size}`, [], Float32Array.of(value));
      this.constants.set(value, name);
    }
    return name;
  }

  /** Appends a node reading `inputs` and returns the name of its (single) output. */
  node(opType: string, scope: string, inputs: string[], attribute: NodeSpec['attribute'] = []) {
    const output = `${scope}/${opType}_${this.counter++}`;
    this.nodes.push({ input: inputs, output: [output], name: output, op_type: opType, attribute });
    return output;
  }

  /** Appends a node applied to the current value; its output becomes the current value. */
  apply(opType: string, scope: string, inputs: string[] = [], attribute?: NodeSpec['attribute']) {
    this.current = this.node(opType, scope, [this.current, ...inputs], attribute);
    return this.current;
  }

  activation(a: Activation, scope: string): void {
    const x = this.current;
    switch (a.kind) {
      case 'none':
        return;
      case 'relu':
        this.apply('Relu', scope);
        return;
      case 'leaky_relu':
        this.apply('LeakyRelu', scope, [], [floatAttribute('alpha', a.negativeSlope)]);
        return;
      case 'tanh':
        this.apply('Tanh', scope);
        return;
      case 'sigmoid':
        this.apply('Sigmoid', scope);
        return;
      case 'selu':
        this.apply(
          'Selu',
          scope,
          [],
          [floatAttribute('alpha', SELU_ALPHA), floatAttribute('gamma', SELU_SCALE)],
        );
        return;
      case 'gelu': {
        // Exact GELU, as torch.nn.GELU(): 0.5·x·(1 + erf(x/√2)) (the Gelu operator needs opset 20).
        this.apply('Mul', scope, [this.scalar(Math.SQRT1_2)]);
        this.apply('Erf', scope);
        this.apply('Add', scope, [this.scalar(1)]);
        this.apply('Mul', scope, [x]);
        this.apply('Mul', scope, [this.scalar(0.5)]);
        return;
      }
      case 'gelu_tanh': {
        // GELU(approximate='tanh'): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
        const square = this.node('Mul', scope, [x, x]);
        const cube = this.node('Mul', scope, [square, x]);
        const scaledCube = this.node('Mul', scope, [cube, this.scalar(0.044715)]);
        this.current = this.node('Add', scope, [x, scaledCube]);
        this.apply('Mul', scope, [this.scalar(Math.sqrt(2 / Math.PI))]);
        this.apply('Tanh', scope);
        this.apply('Add', scope, [this.scalar(1)]);
        this.apply('Mul', scope, [x]);
        this.apply('Mul', scope, [this.scalar(0.5)]);
        return;
      }
    }
  }

  step(step: PlanStep, index: number): void {
    const scope = `step${index}_${step.op}`;
    switch (step.op) {
      case 'dense': {
        // Y = X·Wᵀ + b with W stored [out, in] as PyTorch's Linear stores it (transB = 1).
        const w = this.tensor(`${scope}.weight`, [step.outFeatures, step.inFeatures], step.weight);
        const b = this.tensor(`${scope}.bias`, [step.outFeatures], step.bias);
        this.apply('Gemm', scope, [w, b], [intAttribute('transB', 1)]);
        break;
      }
      case 'affine': {
        // Per feature (checkExportable: spatial = 1, so channels = features).
        this.apply('Mul', scope, [
          this.tensor(`${scope}.scale`, [step.channels], Float32Array.from(step.scale)),
        ]);
        this.apply('Add', scope, [
          this.tensor(`${scope}.shift`, [step.channels], Float32Array.from(step.shift)),
        ]);
        break;
      }
      case 'layernorm': {
        // Over the whole row (checkExportable: one group).
        const features = step.groupSize;
        const ones = new Float32Array(features).fill(1);
        const weight = this.tensor(`${scope}.weight`, [features], step.weight ?? ones);
        const inputs = [weight];
        if (step.bias) inputs.push(this.tensor(`${scope}.bias`, [features], step.bias));
        this.apply('LayerNormalization', scope, inputs, [
          intAttribute('axis', -1),
          floatAttribute('epsilon', step.eps),
        ]);
        break;
      }
      case 'activation':
        break;
      default:
        // Refused before any node is written (checkExportable).
        throw new Error(`unexpected ${step.op} step`);
    }
    this.activation(step.activation, scope);
  }
}

/**
 * NOT_EXPORTABLE unless every step is one the export writes: the graph is [batch, features]
 * throughout, so the steps of [C, H, W] models (convolutions, pooling, residual skips, per-channel
 * affines, LayerNorm over groups) are not exported yet.
 */
function checkExportable(plan: CompiledPlan): void {
  const unsupported = plan.steps.find(
    (s) =>
      !(
        s.op === 'dense' ||
        s.op === 'activation' ||
        (s.op === 'affine' && s.spatial === 1) ||
        (s.op === 'layernorm' && s.groups === 1)
      ),
  );
  if (unsupported) {
    throw new NormserveError(
      'NOT_EXPORTABLE',
      `the ONNX export does not cover this model's ${unsupported.op} step (layers ${unsupported.layers.join(', ')}) yet: it exports Linear, BatchNorm, LayerNorm over features and activations`,
    );
  }
}

/**
 * Writes a compiled (fused) plan as an ONNX model: one Gemm per dense step (BatchNorm and the
 * input transform already folded into its weights), Mul+Add per stand-alone affine step,
 * LayerNormalization per LayerNorm step, and each fused activation as the ONNX operators that
 * compute PyTorch's definition exactly. The input is [batch, inputWidth] FP32 with a symbolic
 * batch dimension; the output is the plan's output (the model's raw outputs) and, on request,
 * its softmax. Weights are stored as float32 raw data: what the plan computes with.
 */
export function exportOnnx(plan: CompiledPlan, options: OnnxExportOptions): Uint8Array {
  checkExportable(plan);
  const graph = new GraphBuilder(options.inputName);
  for (const [index, step] of plan.steps.entries()) graph.step(step, index);
  // A plan of no steps (only eval identities) still needs a node between input and output.
  if (graph.nodes.length === 0) graph.apply('Identity', 'identity');
  // The last node writes the graph output under its public name.
  const last = graph.nodes.at(-1)!;
  for (const node of graph.nodes)
    node.input = node.input.map((v) => (v === last.output[0] ? options.outputName : v));
  last.output = [options.outputName];
  graph.current = options.outputName;

  const valueInfo = (name: string, width: number) => ({
    name,
    type: {
      tensor_type: {
        elem_type: FLOAT,
        shape: { dim: [{ dim_param: ONNX_BATCH_DIM }, { dim_value: width }] },
      },
    },
  });
  const outputs = [valueInfo(options.outputName, plan.outputWidth)];
  if (options.probabilitiesName !== undefined) {
    graph.nodes.push({
      input: [options.outputName],
      output: [options.probabilitiesName],
      name: options.probabilitiesName,
      op_type: 'Softmax',
      attribute: [intAttribute('axis', -1)],
    });
    outputs.push(valueInfo(options.probabilitiesName, plan.outputWidth));
  }

  const type = onnxModelType();
  // encode() takes the plain object as it is (fromObject would copy every weight once more).
  const model = {
    ir_version: ONNX_IR_VERSION,
    opset_import: [{ domain: '', version: ONNX_OPSET }],
    producer_name: 'normserve',
    ...(options.producerVersion !== undefined ? { producer_version: options.producerVersion } : {}),
    ...(options.modelVersion !== undefined ? { model_version: options.modelVersion } : {}),
    ...(options.docString !== undefined ? { doc_string: options.docString } : {}),
    graph: {
      name: options.graphName,
      node: graph.nodes,
      initializer: graph.initializers,
      input: [valueInfo(options.inputName, plan.inputWidth)],
      output: outputs,
    },
    metadata_props: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
  return type.encode(model).finish();
}
