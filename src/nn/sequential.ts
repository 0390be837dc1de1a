import { NormserveError } from '../errors/index.js';
import { Module, type StateDict } from './module.js';
import type { Parameter } from './parameter.js';
import type { Tensor } from './tensor.js';

/**
 * torch.nn.Sequential: runs its modules in order; state-dict keys are prefixed with the module's
 * index (`0.weight`, `1.running_mean`, …) exactly as PyTorch names them.
 */
export class Sequential extends Module {
  readonly kind = 'Sequential';
  readonly modules: readonly Module[];

  constructor(modules: readonly Module[]) {
    super();
    this.modules = [...modules];
  }

  forward(input: Tensor): Tensor {
    let x = input;
    for (const m of this.modules) x = m.forward(x);
    return x;
  }

  backward(gradOutput: Tensor): Tensor {
    let g = gradOutput;
    for (let i = this.modules.length - 1; i >= 0; i--) g = this.modules[i]!.backward(g);
    return g;
  }

  override train(mode = true): this {
    this.training = mode;
    for (const m of this.modules) m.train(mode);
    return this;
  }

  override namedParameters(): [string, Parameter][] {
    return this.modules.flatMap((m, i) =>
      m.namedParameters().map(([n, p]): [string, Parameter] => [`${i}.${n}`, p]),
    );
  }

  override stateDict(): StateDict {
    const state: StateDict = new Map();
    this.modules.forEach((m, i) => {
      for (const [n, v] of m.stateDict()) state.set(`${i}.${n}`, v);
    });
    return state;
  }

  override loadStateDict(state: StateDict, prefix = ''): void {
    const own = this.stateDict();
    for (const name of state.keys()) {
      if (!own.has(name))
        throw new NormserveError('CHECKPOINT_MISMATCH', `unexpected tensor "${prefix}${name}"`);
    }
    this.modules.forEach((m, i) => {
      const local = `${i}.`;
      const sub: StateDict = new Map();
      for (const [n, v] of state) if (n.startsWith(local)) sub.set(n.slice(local.length), v);
      m.loadStateDict(sub, `${prefix}${local}`);
    });
  }
}
