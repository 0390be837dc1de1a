import { NormserveError } from '../errors/index.js';
import type { Kernels } from './kernels.js';
import type { Parameter } from './parameter.js';
import { referenceKernels } from './reference-kernels.js';
import { copySliced, finish, type Sliced } from './slices.js';
import { StepArray } from './step-array.js';
import type { Tensor } from './tensor.js';

/**
 * A state-dict value: float tensors (stored as F32) or an integer scalar (`num_batches_tracked`,
 * stored as I64 with shape []), named exactly as PyTorch's `state_dict()` names them.
 */
export type StateValue = Tensor | bigint;
export type StateDict = Map<string, StateValue>;

/** A deep copy of a state dict (tensors copied, integers as they are). */
export function cloneStateDict(state: StateDict): StateDict {
  const copy: StateDict = new Map();
  for (const [k, v] of state) copy.set(k, typeof v === 'bigint' ? v : v.clone());
  return copy;
}

/**
 * What a state-dict entry is, without its values: an integer scalar, or a float tensor of a
 * shape. Enough to decide whether a state fits a module before any value is read (a checkpoint's
 * file header says this much).
 */
export type StateSignature =
  | { integer: true; shape: readonly number[] }
  | { integer: false; shape: readonly number[] };

export const signatureOf = (value: StateValue): StateSignature =>
  typeof value === 'bigint' ? { integer: true, shape: [] } : { integer: false, shape: value.shape };

const signaturesOf = (state: StateDict): Map<string, StateSignature> =>
  new Map([...state].map(([name, value]) => [name, signatureOf(value)]));

/** Why `found` cannot be written into `target` (named `fullName`); undefined when it can. */
function entryMismatch(
  fullName: string,
  target: StateSignature,
  found: StateSignature,
): string | undefined {
  if (target.integer) {
    return found.integer && found.shape.length === 0
      ? undefined
      : `tensor "${fullName}" must be an integer scalar`;
  }
  if (found.integer) return `tensor "${fullName}" must be a float tensor`;
  if (
    target.shape.length !== found.shape.length ||
    target.shape.some((d, i) => d !== found.shape[i])
  )
    return `tensor "${fullName}" has shape [${found.shape}], expected [${target.shape}]`;
  return undefined;
}

/**
 * The one rule of loading a state into a module whose state has the signatures `own` (its
 * stateDict()'s, or what its config declares before it is built): no name `own` lacks, none
 * missing but an integer scalar, each of the kind and shape `own` holds. Throws
 * CHECKPOINT_MISMATCH naming the first entry that breaks it (names prefixed with `prefix`).
 * loadStateDict applies it to values; a reader of a checkpoint applies it to the file's header,
 * before reading any value. The one integer scalar is BatchNorm's num_batches_tracked: absent, it
 * loads as 0, as PyTorch's `_NormBase._load_from_state_dict` fills it in for a state_dict without
 * version metadata (every safetensors file), so `load_state_dict(strict=True)` accepts the file.
 */
export function checkStateFits(
  own: ReadonlyMap<string, StateSignature>,
  found: ReadonlyMap<string, StateSignature>,
  prefix = '',
): void {
  for (const name of found.keys()) {
    if (!own.has(name))
      throw new NormserveError('CHECKPOINT_MISMATCH', `unexpected tensor "${prefix}${name}"`);
  }
  for (const [name, target] of own) {
    const signature = found.get(name);
    if (signature === undefined && target.integer) continue;
    const problem =
      signature === undefined
        ? `missing tensor "${prefix}${name}"`
        : entryMismatch(`${prefix}${name}`, target, signature);
    if (problem !== undefined) throw new NormserveError('CHECKPOINT_MISMATCH', problem);
  }
}

/**
 * A layer with PyTorch semantics: forward in train or eval mode, backward from the gradient of the
 * output (gradients accumulate into parameters, as `loss.backward()` does), parameters and buffers
 * named as in PyTorch.
 */
export abstract class Module {
  training = true;
  /** Where the layer's arithmetic runs (nn/kernels.ts): the JavaScript reference unless useKernels chose. */
  kernels: Kernels = referenceKernels;
  /**
   * Whether forward and backward in train mode may return the arrays of this module's previous
   * call (nn/step-array.ts), valid until its next call: set by reuseArrays for a training loop.
   */
  reusesArrays = false;
  private readonly stepArrays: StepArray[] = [];

  /** PyTorch class name, e.g. `BatchNorm1d`. */
  abstract readonly kind: string;

  abstract forward(input: Tensor): Tensor;

  /** Gradient of the loss with respect to the last forward's input. */
  abstract backward(gradOutput: Tensor): Tensor;

  /**
   * Accumulates the parameters' gradients only, for when the input's gradient is not wanted (the
   * first layers of a network: PyTorch skips what no leaf requires). Layers that can skip work
   * override it (Linear, Conv2d skip their largest product); by default a full backward.
   */
  backwardParameters(gradOutput: Tensor): void {
    this.backward(gradOutput);
  }

  namedParameters(): [string, Parameter][] {
    return [];
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Parameters and buffers, as `state_dict()` orders them (parameters first, then buffers). */
  stateDict(): StateDict {
    const state: StateDict = new Map();
    for (const [name, p] of this.namedParameters()) state.set(name, p.value);
    return state;
  }

  /** Copies values into this module's tensors (shapes must match); every key must be consumed. */
  loadStateDict(state: StateDict, prefix = ''): void {
    finish(this.loadingStateDict(state, prefix));
  }

  /**
   * loadStateDict in slices (slices.ts): the state is checked whole first, then copied at most
   * SLICE_VALUES values at a time, so a caller can keep an event loop turning while a large
   * network is loaded.
   */
  *loadingStateDict(state: StateDict, prefix = ''): Sliced<void> {
    const own = this.stateDict();
    checkStateFits(signaturesOf(own), signaturesOf(state), prefix);
    // An integer scalar the state lacks (checkStateFits let it) loads as 0.
    for (const [name, target] of own)
      yield* this.assign(`${prefix}${name}`, name, target, state.get(name) ?? 0n);
  }

  /** Writes one state entry (checkStateFits passed); modules with integer buffers override it. */
  protected *assign(
    fullName: string,
    _name: string,
    target: StateValue,
    value: StateValue,
  ): Sliced<void> {
    // checkStateFits matched the kinds: only a module holding an integer it does not assign
    // itself (as BatchNorm assigns num_batches_tracked) gets here.
    if (typeof target === 'bigint' || typeof value === 'bigint')
      throw new Error(`${this.kind}: integer state "${fullName}" needs the module's own assign`);
    yield* copySliced(target.data, value.data);
  }

  /** Sub-modules with their names (PyTorch's named_children); leaves have none. */
  children(): readonly (readonly [string, Module])[] {
    return [];
  }

  /** Sets train or eval mode here and in every sub-module. */
  train(mode = true): this {
    this.training = mode;
    for (const [, child] of this.children()) child.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Runs this module and every sub-module on `kernels` from now on, moving every parameter's
   * storage to them (values kept), as PyTorch's module.to(device).
   */
  useKernels(kernels: Kernels): this {
    for (const [, m] of namedModules(this)) m.kernels = kernels;
    for (const p of this.parameters()) kernels.adopt(p);
    return this;
  }

  /**
   * Lets this module and every sub-module hand out, in train mode, the same output and gradient
   * arrays every step (overwritten by the next forward or backward) instead of new ones: what a
   * training loop that is done with a step's tensors before the next step wants. Off by default;
   * turning it off lets go of the kept arrays.
   */
  reuseArrays(on = true): this {
    for (const [, m] of namedModules(this)) {
      m.reusesArrays = on;
      if (!on) for (const a of m.stepArrays) a.release();
    }
    return this;
  }

  /** A per-step array of this module (nn/step-array.ts), taken with `reusing`. */
  protected stepArray(): StepArray {
    const a = new StepArray();
    this.stepArrays.push(a);
    return a;
  }

  /** Whether this call may reuse the arrays of the previous one (train mode, reuseArrays on). */
  protected get reusing(): boolean {
    return this.reusesArrays && this.training;
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }
}

/**
 * Every module of a tree depth-first, parents before children, with its dotted path (PyTorch's
 * named_modules(): `''` for the root, `1.body.0` for a layer inside a block); the path is the
 * prefix of the module's state-dict keys.
 */
export function namedModules(root: Module, prefix = ''): [string, Module][] {
  const out: [string, Module][] = [];
  // Appended one by one: spreading a child's list into push() passes one argument per module, and
  // a block of 200,000 layers overflowed the stack ("Maximum call stack size exceeded").
  const walk = (module: Module, path: string): void => {
    out.push([path, module]);
    for (const [name, child] of module.children())
      walk(child, path === '' ? name : `${path}.${name}`);
  };
  walk(root, prefix);
  return out;
}

/**
 * A module made of named sub-modules: parameters and state-dict keys are the children's, prefixed
 * with `<child name>.` exactly as PyTorch names them (`0.weight`, `body.1.running_mean`, …).
 */
export abstract class Container extends Module {
  abstract override children(): readonly (readonly [string, Module])[];

  override namedParameters(): [string, Parameter][] {
    return this.children().flatMap(([name, m]) =>
      m.namedParameters().map(([n, p]): [string, Parameter] => [`${name}.${n}`, p]),
    );
  }

  override stateDict(): StateDict {
    const state: StateDict = new Map();
    for (const [name, m] of this.children())
      for (const [n, v] of m.stateDict()) state.set(`${name}.${n}`, v);
    return state;
  }

  override *loadingStateDict(state: StateDict, prefix = ''): Sliced<void> {
    checkStateFits(signaturesOf(this.stateDict()), signaturesOf(state), prefix);
    for (const [name, m] of this.children()) {
      const local = `${name}.`;
      const sub: StateDict = new Map();
      for (const [n, v] of state) if (n.startsWith(local)) sub.set(n.slice(local.length), v);
      yield* m.loadingStateDict(sub, `${prefix}${local}`);
    }
  }
}

/** Throws unless the module has run forward (backward needs what forward cached). */
export function requireCache<T>(cache: T | undefined, kind: string): T {
  if (cache === undefined) throw new Error(`${kind}.backward() called before forward()`);
  return cache;
}
