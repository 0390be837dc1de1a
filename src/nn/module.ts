import { NormserveError } from '../errors/index.js';
import type { Parameter } from './parameter.js';
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
 * A layer with PyTorch semantics: forward in train or eval mode, backward from the gradient of the
 * output (gradients accumulate into parameters, as `loss.backward()` does), parameters and buffers
 * named as in PyTorch.
 */
export abstract class Module {
  training = true;

  /** PyTorch class name, e.g. `BatchNorm1d`. */
  abstract readonly kind: string;

  abstract forward(input: Tensor): Tensor;

  /** Gradient of the loss with respect to the last forward's input. */
  abstract backward(gradOutput: Tensor): Tensor;

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
    const own = this.stateDict();
    for (const name of state.keys()) {
      if (!own.has(name))
        throw new NormserveError('CHECKPOINT_MISMATCH', `unexpected tensor "${prefix}${name}"`);
    }
    for (const [name, target] of own) {
      const value = state.get(name);
      if (value === undefined)
        throw new NormserveError('CHECKPOINT_MISMATCH', `missing tensor "${prefix}${name}"`);
      this.assign(`${prefix}${name}`, name, target, value);
    }
  }

  /** Writes one state entry; modules with integer buffers override it for those. */
  protected assign(fullName: string, _name: string, target: StateValue, value: StateValue): void {
    if (typeof target === 'bigint' || typeof value === 'bigint') {
      throw new NormserveError(
        'CHECKPOINT_MISMATCH',
        `tensor "${fullName}" must be ${typeof target === 'bigint' ? 'an integer scalar' : 'a float tensor'}`,
      );
    }
    if (
      target.shape.length !== value.shape.length ||
      target.shape.some((d, i) => d !== value.shape[i])
    ) {
      throw new NormserveError(
        'CHECKPOINT_MISMATCH',
        `tensor "${fullName}" has shape [${value.shape}], expected [${target.shape}]`,
      );
    }
    target.data.set(value.data);
  }

  train(mode = true): this {
    this.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }
}

/** Throws unless the module has run forward (backward needs what forward cached). */
export function requireCache<T>(cache: T | undefined, kind: string): T {
  if (cache === undefined) throw new Error(`${kind}.backward() called before forward()`);
  return cache;
}
