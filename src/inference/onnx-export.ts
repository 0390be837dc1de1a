import protobuf from 'protobufjs';
import { NormserveError } from '../errors/index.js';
import { numelOf, SELU_ALPHA, SELU_SCALE } from '../nn/index.js';
import { foldCentre } from './compile-rules/index.js';
import { ONNX_SCHEMA } from './onnx-schema.js';
import type { Activation, CompiledPlan, PlanStep, PoolStep } from './plan.js';

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
  /** Name of the FP32 input: [batch, ...input shape] ([batch, features], or [batch, C, H, W]). */
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
const INT64 = 7; // TensorProto.DataType.INT64
const ATTRIBUTE_FLOAT = 1;
const ATTRIBUTE_INT = 2;
const ATTRIBUTE_INTS = 7;

interface NodeSpec {
  input: string[];
  output: string[];
  name: string;
  op_type: string;
  attribute: { name: string; type: number; f?: number; i?: number; ints?: number[] }[];
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
const intsAttribute = (name: string, ints: readonly number[]) => ({
  name,
  type: ATTRIBUTE_INTS,
  ints: [...ints],
});

function notExportable(step: PlanStep, why: string): NormserveError {
  return new NormserveError(
    'NOT_EXPORTABLE',
    `the ONNX export cannot write this model's ${step.op} step (layers ${step.layers.join(', ')}): ${why}`,
  );
}

/**
 * Builds the graph of a plan: nodes, initializers and value names, one step after the other. The
 * current value is [batch, ...shape]: the input's shape, [C, H, W] through convolutions and
 * pooling, flattened where a dense step needs [batch, features].
 */
class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: TensorSpec[] = [];
  private readonly constants = new Map<number, string>();
  /** The value each residual block kept (by skip slot). */
  private readonly skips: string[] = [];
  private counter = 0;

  constructor(
    public current: string,
    /** The per-sample shape of the current value. */
    public shape: number[],
  ) {}

  tensor(name: string, dims: number[], values: Float32Array): string {
    this.initializers.push({ name, dims, data_type: FLOAT, raw_data: littleEndianBytes(values) });
    return name;
  }

  /** An int64 initializer (Reshape's target shape). */
  int64Tensor(name: string, values: readonly number[]): string {
    const raw = new Uint8Array(values.length * 8);
    const view = new DataView(raw.buffer);
    for (const [i, v] of values.entries()) view.setBigInt64(i * 8, BigInt(v), true);
    this.initializers.push({ name, dims: [values.length], data_type: INT64, raw_data: raw });
    return name;
  }

  /** The current value as [batch, ...shape] (Reshape; 0 keeps the batch dimension as it is). */
  reshape(shape: number[], scope: string): void {
    const target = this.int64Tensor(`${scope}.shape_${this.counter}`, [0, ...shape]);
    this.apply('Reshape', scope, [target]);
    this.shape = shape;
  }

  /** [batch, features] for a dense step: Flatten, as torch.nn.Flatten() does. */
  flat(scope: string): void {
    if (this.shape.length === 1) return;
    this.apply('Flatten', scope, [], [intAttribute('axis', 1)]);
    this.shape = [numelOf(this.shape)];
  }

  /** [batch, C, H, W] for a convolution or pooling step. */
  image(channels: number, h: number, w: number, scope: string): void {
    const s = this.shape;
    if (s.length !== 3 || s[0] !== channels || s[1] !== h || s[2] !== w)
      this.reshape([channels, h, w], scope);
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
        this.flat(scope);
        const w = this.tensor(`${scope}.weight`, [step.outFeatures, step.inFeatures], step.weight);
        const b = this.tensor(`${scope}.bias`, [step.outFeatures], step.bias);
        this.apply('Gemm', scope, [w, b], [intAttribute('transB', 1)]);
        this.shape = [step.outFeatures];
        break;
      }
      case 'conv2d': {
        // The plan's [out, C·kh·kw] weight is PyTorch's [out, C, kh, kw], row-major.
        const g = step.geometry;
        this.image(g.channels, g.inH, g.inW, scope);
        const dims = [step.outChannels, g.channels, g.kernel[0], g.kernel[1]];
        const w = this.tensor(`${scope}.weight`, dims, step.weight);
        const b = this.tensor(`${scope}.bias`, [step.outChannels], step.bias);
        this.apply(
          'Conv',
          scope,
          [w, b],
          [
            intsAttribute('kernel_shape', g.kernel),
            intsAttribute('strides', g.stride),
            intsAttribute('pads', [g.padding[0], g.padding[1], g.padding[0], g.padding[1]]),
            intsAttribute('dilations', g.dilation),
          ],
        );
        this.shape = [step.outChannels, g.outH, g.outW];
        break;
      }
      case 'maxpool2d':
      case 'avgpool2d':
        this.image(step.channels, step.windows.inH, step.windows.inW, scope);
        this.pool(step, scope);
        this.shape = [step.channels, step.windows.outH, step.windows.outW];
        break;
      case 'affine': {
        // x·scale + shift per channel: [C, 1, …] against [C, …] (per feature: the whole shape).
        const s = this.shape;
        let dims: number[];
        if (step.spatial === 1 && step.channels === numelOf(s)) dims = [...s];
        else if (s[0] === step.channels && numelOf(s.slice(1)) === step.spatial)
          dims = [step.channels, ...s.slice(1).map(() => 1)];
        else throw notExportable(step, `no broadcast of ${step.channels} channels over [${s}]`);
        // The executors compute x·s + t in float64; float32 rounds x·s first, an error of
        // |t|·2⁻²⁴ that is the whole output where x is near −t/s: inputs far from zero before a
        // padded Conv2d, which folds no shifted affine, exported 1e-2 off PyTorch at mean/std
        // ~6000 (review of 2026-12-04). Centred on the input's centre first (centredAffine).
        const { minusCentre, shift } = centredAffine(step);
        if (minusCentre)
          this.apply('Add', scope, [this.tensor(`${scope}.centre`, dims, minusCentre)]);
        this.apply('Mul', scope, [
          this.tensor(`${scope}.scale`, dims, Float32Array.from(step.scale)),
        ]);
        this.apply('Add', scope, [this.tensor(`${scope}.shift`, dims, shift)]);
        break;
      }
      case 'layernorm':
        this.layerNorm(step, scope);
        break;
      case 'save_skip':
        this.skips[step.slot] = this.current;
        break;
      case 'add_skip':
        this.apply('Add', scope, [this.skips[step.slot]!]);
        break;
      case 'activation':
        break;
      default: {
        // A plan step added without an export rule fails to typecheck here first.
        const unwritten: never = step;
        throw notExportable(unwritten, 'the export has no rule for this step');
      }
    }
    this.activation(step.activation, scope);
  }

  private pool(step: PoolStep, scope: string): void {
    const source = step.source;
    const { inH, inW, outH, outW } = step.windows;
    if (source.kind === 'sliding') {
      const [ph, pw] = source.padding;
      const attributes = [
        intsAttribute('kernel_shape', source.kernel),
        intsAttribute('strides', source.stride),
        intsAttribute('pads', [ph, pw, ph, pw]),
      ];
      if (step.op === 'maxpool2d') this.apply('MaxPool', scope, [], attributes);
      else
        this.apply(
          'AveragePool',
          scope,
          [],
          [...attributes, intAttribute('count_include_pad', source.countIncludePad ? 1 : 0)],
        );
      return;
    }
    // Adaptive: one window over everything, or equal windows side by side (in divisible by out).
    if (outH === 1 && outW === 1) {
      this.apply('GlobalAveragePool', scope);
      return;
    }
    if (inH % outH === 0 && inW % outW === 0) {
      const kernel = [inH / outH, inW / outW];
      this.apply(
        'AveragePool',
        scope,
        [],
        [intsAttribute('kernel_shape', kernel), intsAttribute('strides', kernel)],
      );
      return;
    }
    // Windows of different sizes (ONNX's AveragePool has one): [batch, C, H·W] times the
    // [H·W, outH·outW] matrix whose column p holds 1/divisor over window p — the executors' table.
    const { h0, h1, w0, w1, divisor } = step.windows;
    const positions = outH * outW;
    const mean = new Float32Array(inH * inW * positions);
    for (let p = 0; p < positions; p++)
      for (let h = h0[p]!; h < h1[p]!; h++)
        for (let w = w0[p]!; w < w1[p]!; w++) mean[(h * inW + w) * positions + p] = 1 / divisor[p]!;
    this.reshape([step.channels, inH * inW], scope);
    this.apply('MatMul', scope, [this.tensor(`${scope}.windows`, [inH * inW, positions], mean)]);
    this.reshape([step.channels, outH, outW], scope);
  }

  /** LayerNormalization over the trailing dimensions a group spans (reshaped if none does). */
  private layerNorm(step: Extract<PlanStep, { op: 'layernorm' }>, scope: string): void {
    const n = step.groupSize;
    const original = this.shape;
    let from = original.length - 1;
    while (from > 0 && numelOf(original.slice(from)) < n) from--;
    if (numelOf(original.slice(from)) !== n) {
      this.reshape([step.groups, n], scope);
      from = 1;
    }
    const dims = this.shape.slice(from);
    const inputs = [
      this.tensor(`${scope}.weight`, dims, step.weight ?? new Float32Array(n).fill(1)),
    ];
    if (step.bias) inputs.push(this.tensor(`${scope}.bias`, dims, step.bias));
    // ONNX's axis counts the batch dimension.
    this.apply('LayerNormalization', scope, inputs, [
      intAttribute('axis', from + 1),
      floatAttribute('epsilon', step.eps),
    ]);
    if (this.shape !== original) this.reshape(original, scope);
  }
}

/**
 * An affine x·s + t per channel in float32 ops: `minusCentre` (−c, added first; undefined when no
 * channel has a centre) and the shift to add after the scale. A channel whose input is centred far
 * from zero (foldCentre: the fold's rule, on the step's `centre` μ) is written
 * (x − c)·s + (t + c·s), c = fround(μ): x − c is exact near μ, as PyTorch's x − μ is, where
 * float32's x·s + t rounded x·s to |t|·2⁻²⁴. Others keep x·s + t.
 */
function centredAffine(step: {
  scale: Float64Array;
  shift: Float64Array;
  centre?: Float64Array | undefined;
}): { minusCentre: Float32Array | undefined; shift: Float32Array } {
  const { scale } = step;
  const centres = Float64Array.from(scale, (s, k) => foldCentre(step.centre?.[k], s));
  const shift = Float32Array.from(step.shift, (t, k) =>
    centres[k] !== 0 ? t + centres[k]! * scale[k]! : t,
  );
  return {
    minusCentre: centres.some((c) => c !== 0) ? Float32Array.from(centres, (c) => -c) : undefined,
    shift,
  };
}

/**
 * Writes a compiled (fused) plan as an ONNX model: one Gemm per dense step and one Conv per conv2d
 * step (BatchNorm and the input transform already folded into their weights), MaxPool,
 * AveragePool (count_include_pad as the layer had it) or GlobalAveragePool per pooling step, Add
 * for the end of a residual block, Mul+Add per stand-alone affine step (per feature, or per
 * channel as [C, 1, 1]), LayerNormalization per LayerNorm step, Flatten where the network goes from
 * [C, H, W] to features, and each fused activation as the ONNX operators that compute PyTorch's
 * definition exactly. The input is FP32 [batch, ...input shape] — [batch, C, H, W] for an image
 * model, as PyTorch's export has it — with a symbolic batch dimension; the output is the plan's
 * output (the model's raw outputs, [batch, outputWidth]) and, on request, its softmax. Weights are
 * stored as float32 raw data: what the plan computes with. Adaptive pooling whose windows differ
 * in size (which PyTorch's own export refuses) is a MatMul by the window-averaging matrix.
 */
export function exportOnnx(plan: CompiledPlan, options: OnnxExportOptions): Uint8Array {
  const graph = new GraphBuilder(options.inputName, [...plan.inputShape]);
  for (const [index, step] of plan.steps.entries()) graph.step(step, index);
  // The outputs are [batch, outputWidth], as the service answers them.
  graph.flat('output');
  // A plan of no steps (only eval identities) still needs a node between input and output.
  if (graph.nodes.length === 0) graph.apply('Identity', 'identity');
  // The last node writes the graph output under its public name.
  const last = graph.nodes.at(-1)!;
  for (const node of graph.nodes)
    node.input = node.input.map((v) => (v === last.output[0] ? options.outputName : v));
  last.output = [options.outputName];
  graph.current = options.outputName;

  const valueInfo = (name: string, ...dims: number[]) => ({
    name,
    type: {
      tensor_type: {
        elem_type: FLOAT,
        shape: { dim: [{ dim_param: ONNX_BATCH_DIM }, ...dims.map((d) => ({ dim_value: d }))] },
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
      input: [valueInfo(options.inputName, ...plan.inputShape)],
      output: outputs,
    },
    metadata_props: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
  };
  return type.encode(model).finish();
}
