/**
 * The engines of the peers benchmark, each behind one interface: normserve's executors and the
 * peers (onnxruntime-node, onnxruntime-web, TensorFlow.js WASM, PyTorch), all running the same
 * fused plan — the peers from normserve's ONNX export or from the plan's weights. The peers'
 * packages come from bench/peers/node_modules (see peers-install.ts), never from normserve's
 * own dependencies, so they are loaded with a require rooted there.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { writeSafetensors } from '../src/checkpoint/index.js';
import {
  type Activation,
  type CompiledPlan,
  createExecutor,
  PlanExecutor,
  type PlanStep,
  WasmExecutor,
} from '../src/inference/index.js';
import { nodeEngineOptions } from '../src/service/index.js';
import type { BenchModel } from './models.js';

/** One engine running one model. */
export interface BenchEngine {
  readonly name: string;
  /** Outputs [rows, outputWidth] of [rows, inputWidth] inputs (the model's raw outputs). */
  run(input: Float32Array, rows: number): Float32Array | Promise<Float32Array>;
  /**
   * Rows/s of back-to-back calls on this input for about `budgetMs` (at least one call). Engines
   * in another process measure there; in-process ones leave it to the harness's timing loop.
   */
  measure?(input: Float32Array, rows: number, budgetMs: number): Promise<number>;
  close?(): Promise<void>;
}

/** Makes an engine for a model; `onnx` is normserve's export of the model's plan. */
export interface EngineFactory {
  readonly name: string;
  create(model: BenchModel, onnx: Uint8Array, scratchDir: string): Promise<BenchEngine>;
}

const peersRequire = createRequire(new URL('./peers/package.json', import.meta.url));

/** normserve's fused plan on the WebAssembly SIMD engine, the calling thread and threads − 1 helpers. */
export function normserveWasm(threads: number): EngineFactory {
  return {
    name: `normserve (wasm, ${threads} thread${threads > 1 ? 's' : ''})`,
    async create({ model }) {
      const executor = createExecutor(model.plan, {
        ...nodeEngineOptions({ engine: 'wasm', threads }),
        maxBatchSize: 4096,
      });
      if (!(executor instanceof WasmExecutor)) throw new Error('no WebAssembly SIMD here');
      await executor.ready();
      return {
        name: this.name,
        run: (input, rows) => executor.run(input, rows),
        close: async () => executor.close(),
      };
    },
  };
}

/** normserve's fused plan on the plain-JavaScript reference executor. */
export const normserveJs: EngineFactory = {
  name: 'normserve (js, fused)',
  async create({ model }) {
    const executor = new PlanExecutor(model.plan, 4096);
    return { name: this.name, run: (input, rows) => executor.run(input, rows) };
  },
};

type Ort = typeof import('onnxruntime-web');

function ortEngine(
  name: string,
  ort: Ort,
  session: Awaited<ReturnType<Ort['InferenceSession']['create']>>,
  width: number,
): BenchEngine {
  const [inputName] = session.inputNames;
  const [outputName] = session.outputNames;
  return {
    name,
    async run(input, rows) {
      const feeds = {
        [inputName!]: new ort.Tensor('float32', input.subarray(0, rows * width), [rows, width]),
      };
      const out = await session.run(feeds);
      return out[outputName!]!.data as Float32Array;
    },
    close: () => session.release(),
  };
}

/** onnxruntime-node (native CPU provider) with `threads` intra-op threads, sequential execution. */
export function onnxruntimeNode(threads: number): EngineFactory {
  return {
    name: `onnxruntime-node (${threads} thread${threads > 1 ? 's' : ''})`,
    async create({ inputWidth }, onnx) {
      const ort = peersRequire('onnxruntime-node') as Ort;
      const session = await ort.InferenceSession.create(onnx, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        logSeverityLevel: 3,
      });
      return ortEngine(this.name, ort, session, inputWidth);
    },
  };
}

/** onnxruntime-web's WASM (SIMD) backend in Node, one thread. */
export const onnxruntimeWeb: EngineFactory = {
  name: 'onnxruntime-web (wasm, 1 thread)',
  async create({ inputWidth }, onnx) {
    const ort = peersRequire('onnxruntime-web') as Ort;
    ort.env.wasm.numThreads = 1;
    const session = await ort.InferenceSession.create(onnx, {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
    });
    return ortEngine(this.name, ort, session, inputWidth);
  },
};

/** The part of @tensorflow/tfjs-core the benchmark uses. */
interface TfTensor {
  readonly shape: number[];
  dataSync(): Float32Array;
  dispose(): void;
}
type FusedActivation = 'linear' | 'relu' | 'sigmoid' | 'leakyrelu';
interface Tf {
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  getBackend(): string;
  tidy<T extends TfTensor>(fn: () => T): T;
  tensor1d(values: Float32Array): TfTensor;
  tensor2d(values: Float32Array, shape: [number, number]): TfTensor;
  transpose(x: TfTensor): TfTensor;
  keep<T extends TfTensor>(x: T): T;
  fused: {
    matMul(args: {
      a: TfTensor;
      b: TfTensor;
      bias: TfTensor;
      activation: FusedActivation;
      leakyreluAlpha?: number;
    }): TfTensor;
  };
  add(a: TfTensor, b: TfTensor | number): TfTensor;
  sub(a: TfTensor, b: TfTensor): TfTensor;
  mul(a: TfTensor, b: TfTensor | number): TfTensor;
  div(a: TfTensor, b: TfTensor): TfTensor;
  sqrt(x: TfTensor): TfTensor;
  moments(x: TfTensor, axis: number, keepDims: boolean): { mean: TfTensor; variance: TfTensor };
  relu(x: TfTensor): TfTensor;
  leakyRelu(x: TfTensor, alpha: number): TfTensor;
  tanh(x: TfTensor): TfTensor;
  sigmoid(x: TfTensor): TfTensor;
  selu(x: TfTensor): TfTensor;
  erf(x: TfTensor): TfTensor;
  pow(x: TfTensor, e: number): TfTensor;
}

/**
 * TensorFlow.js on its WASM backend (XNNPACK, SIMD; one thread): the plan built from tf ops the
 * way a tfjs user writes a dense network — weights uploaded once as [in, out] kernels, each dense
 * step one fused matMul with bias (and ReLU/Sigmoid/LeakyReLU when the plan fuses them).
 */
export const tfjsWasm: EngineFactory = {
  name: 'tfjs (wasm, 1 thread)',
  async create({ model, inputWidth }) {
    const tf = peersRequire('@tensorflow/tfjs-core') as Tf;
    const wasm = peersRequire('@tensorflow/tfjs-backend-wasm') as {
      setThreadsCount(n: number): void;
    };
    wasm.setThreadsCount(1);
    await tf.setBackend('wasm');
    await tf.ready();
    if (tf.getBackend() !== 'wasm') throw new Error(`tfjs backend is ${tf.getBackend()}`);
    const { forward, weights } = tfjsNetwork(tf, model.plan);
    return {
      name: this.name,
      run(input, rows) {
        const y = tf.tidy(() =>
          forward(tf.tensor2d(input.subarray(0, rows * inputWidth), [rows, inputWidth])),
        );
        const data = y.dataSync();
        y.dispose();
        return data;
      },
      close: async () => {
        for (const w of weights) w.dispose();
      },
    };
  },
};

/** Plan activations that tfjs's fused matMul applies itself. */
const FUSED_ACTIVATIONS: Partial<Record<Activation['kind'], FusedActivation>> = {
  none: 'linear',
  relu: 'relu',
  sigmoid: 'sigmoid',
  leaky_relu: 'leakyrelu',
};

function tfjsNetwork(tf: Tf, plan: CompiledPlan) {
  const weights: TfTensor[] = [];
  const keep = (t: TfTensor) => {
    weights.push(tf.keep(t));
    return t;
  };
  const fusable = (step: PlanStep): FusedActivation | undefined =>
    FUSED_ACTIVATIONS[step.activation.kind];
  const layers = plan.steps.map((step) => {
    let body: (x: TfTensor) => TfTensor;
    let fused = false;
    switch (step.op) {
      case 'dense': {
        const w = tf.tidy(() =>
          keep(tf.transpose(tf.tensor2d(step.weight, [step.outFeatures, step.inFeatures]))),
        );
        const b = keep(tf.tensor1d(step.bias));
        const activation = fusable(step);
        fused = activation !== undefined;
        const alpha = step.activation.kind === 'leaky_relu' ? step.activation.negativeSlope : 0;
        body = (x) =>
          tf.fused.matMul({
            a: x,
            b: w,
            bias: b,
            activation: activation ?? 'linear',
            leakyreluAlpha: alpha,
          });
        break;
      }
      case 'affine': {
        const scale = keep(tf.tensor1d(step.scale));
        const shift = keep(tf.tensor1d(step.shift));
        body = (x) => tf.add(tf.mul(x, scale), shift);
        break;
      }
      case 'layernorm': {
        const weight = step.weight ? keep(tf.tensor1d(step.weight)) : undefined;
        const bias = step.bias ? keep(tf.tensor1d(step.bias)) : undefined;
        body = (x) => {
          const { mean, variance } = tf.moments(x, 1, true);
          let y = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, step.eps)));
          if (weight) y = tf.mul(y, weight);
          if (bias) y = tf.add(y, bias);
          return y;
        };
        break;
      }
      case 'activation':
        body = (x) => x;
        break;
    }
    const activation = fused ? (x: TfTensor) => x : tfjsActivation(tf, step);
    return (x: TfTensor) => activation(body(x));
  });
  return {
    forward: (x: TfTensor) => layers.reduce((h, layer) => layer(h), x),
    weights,
  };
}

function tfjsActivation(tf: Tf, step: PlanStep): (x: TfTensor) => TfTensor {
  const a = step.activation;
  switch (a.kind) {
    case 'none':
      return (x) => x;
    case 'relu':
      return (x) => tf.relu(x);
    case 'leaky_relu':
      return (x) => tf.leakyRelu(x, a.negativeSlope);
    case 'tanh':
      return (x) => tf.tanh(x);
    case 'sigmoid':
      return (x) => tf.sigmoid(x);
    case 'selu':
      return (x) => tf.selu(x);
    case 'gelu':
      return (x) => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
    case 'gelu_tanh':
      return (x) =>
        tf.mul(
          tf.mul(x, 0.5),
          tf.add(
            tf.tanh(tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI))),
            1,
          ),
        );
  }
}

/**
 * Interpreters tried for the PyTorch peer, in order: $PYTHON, python3 on the PATH, and Debian's
 * /usr/bin/python3 (where python3-torch installs; a pyenv or venv python3 may come first on PATH).
 */
const PYTHONS = [
  ...new Set([process.env['PYTHON'], 'python3', '/usr/bin/python3'].filter((p) => p !== undefined)),
];
let torchPython: string | undefined;

/** Finds an interpreter where `import torch` works; returns why none does, else undefined. */
export function torchUnavailable(): string | undefined {
  const failures: string[] = [];
  for (const python of PYTHONS) {
    const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8', timeout: 60_000 });
    if (!probe.error && probe.status === 0) {
      torchPython = python;
      return undefined;
    }
    failures.push(
      `${python}: ${probe.error?.message ?? probe.stderr.trim().split('\n').at(-1) ?? `exit ${probe.status}`}`,
    );
  }
  return `no python3 with torch (${failures.join('; ')})`;
}

/** The interpreter torchUnavailable() found (undefined before it found one). */
export const torchInterpreter = (): string | undefined => torchPython;

/** A JSON-lines conversation with bench/torch-peer.py. */
class TorchProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly pending: ((line: string) => void)[] = [];
  private stderr = '';

  constructor() {
    if (torchPython === undefined) throw new Error('call torchUnavailable() first');
    this.child = spawn(torchPython, [join('bench', 'torch-peer.py')], { stdio: 'pipe' });
    this.child.stderr.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-2000);
    });
    this.lines = createInterface({ input: this.child.stdout });
    this.lines.on('line', (line) => this.pending.shift()?.(line));
    this.child.once('exit', (code) => {
      for (const reject of this.pending.splice(0))
        reject(JSON.stringify({ error: `torch-peer.py exited ${code}: ${this.stderr}` }));
    });
  }

  async call<T>(command: Record<string, unknown>): Promise<T> {
    const line = await new Promise<string>((resolve) => {
      this.pending.push(resolve);
      const json = JSON.stringify(command, (_key, value: unknown) =>
        ArrayBuffer.isView(value) ? undefined : value,
      );
      this.child.stdin.write(`${json}\n`);
    });
    const reply = JSON.parse(line) as T & { error?: string };
    if (reply.error !== undefined) throw new Error(`PyTorch peer: ${reply.error}`);
    return reply;
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end(`${JSON.stringify({ op: 'quit' })}\n`);
    await exited;
  }
}

/** The plan's tensors as safetensors (`<step>.weight`, `<step>.bias`, `<step>.scale`, `<step>.shift`). */
function planForTorch(plan: CompiledPlan): { weights: Uint8Array; steps: unknown[] } {
  const tensors: [string, { dtype: 'F32'; shape: number[]; bytes: Uint8Array }][] = [];
  const add = (name: string, data: Float32Array, shape: number[]) =>
    tensors.push([
      name,
      { dtype: 'F32', shape, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) },
    ]);
  for (const [i, step] of plan.steps.entries()) {
    if (step.op === 'dense') {
      add(`${i}.weight`, step.weight, [step.outFeatures, step.inFeatures]);
      add(`${i}.bias`, step.bias, [step.outFeatures]);
    } else if (step.op === 'affine' && step.spatial === 1) {
      add(`${i}.scale`, step.scale, [step.channels]);
      add(`${i}.shift`, step.shift, [step.channels]);
    } else if (step.op === 'layernorm' && step.groups === 1) {
      if (step.weight) add(`${i}.weight`, step.weight, [step.groupSize]);
      if (step.bias) add(`${i}.bias`, step.bias, [step.groupSize]);
    } else if (step.op !== 'activation') {
      // bench/torch-peer.py rebuilds flat (MLP) plans only.
      throw new Error(`the PyTorch peer does not run ${step.op} steps`);
    }
  }
  // The steps travel as JSON without their arrays (TorchProcess.call drops typed arrays); the
  // peer reads a LayerNorm's width as `features`.
  const steps = plan.steps.map((s) => (s.op === 'layernorm' ? { ...s, features: s.groupSize } : s));
  return { weights: writeSafetensors(tensors), steps };
}

/** PyTorch 1.13 on the CPU, one thread, in a persistent Python process (bench/torch-peer.py). */
export const pytorch: EngineFactory = {
  name: 'pytorch (cpu, 1 thread)',
  async create({ model, inputWidth, name }, _onnx, scratchDir) {
    const { weights, steps } = planForTorch(model.plan);
    const tag = name.split(' ')[0];
    const weightsPath = join(scratchDir, `${tag}-plan.safetensors`);
    writeFileSync(weightsPath, weights);
    const torch = new TorchProcess();
    const loaded = await torch.call<{ torch: string; threads: number }>({
      op: 'load',
      weights: weightsPath,
      steps,
    });
    let current: { input: Float32Array; rows: number } | undefined;
    const inputPath = join(scratchDir, `${tag}-input.f32`);
    const outputPath = join(scratchDir, `${tag}-output.f32`);
    const setInput = async (input: Float32Array, rows: number) => {
      if (current?.input === input && current.rows === rows) return;
      const data = input.subarray(0, rows * inputWidth);
      writeFileSync(inputPath, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      await torch.call({ op: 'input', path: inputPath, rows, width: inputWidth });
      current = { input, rows };
    };
    return {
      name: `pytorch ${loaded.torch} (cpu, ${loaded.threads} thread)`,
      async run(input, rows) {
        await setInput(input, rows);
        await torch.call({ op: 'run', out: outputPath });
        const bytes = readFileSync(outputPath);
        return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4).slice();
      },
      async measure(input, rows, budgetMs) {
        await setInput(input, rows);
        const reply = await torch.call<{ rows_per_second: number }>({
          op: 'measure',
          budget_ms: budgetMs,
        });
        return reply.rows_per_second;
      },
      close: () => torch.close(),
    };
  },
};
