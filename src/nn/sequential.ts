import { Container, type Module } from './module.js';
import type { Tensor } from './tensor.js';

/**
 * torch.nn.Sequential: runs its modules in order; state-dict keys are prefixed with the module's
 * index (`0.weight`, `1.running_mean`, …) exactly as PyTorch names them.
 */
export class Sequential extends Container {
  readonly kind = 'Sequential';
  readonly modules: readonly Module[];
  private readonly named: readonly (readonly [string, Module])[];

  /** The name of module j: its index, as PyTorch's. */
  static childName(j: number): string {
    return String(j);
  }

  constructor(modules: readonly Module[]) {
    super();
    this.modules = [...modules];
    this.named = this.modules.map((m, i) => [Sequential.childName(i), m] as const);
  }

  override children(): readonly (readonly [string, Module])[] {
    return this.named;
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

  /**
   * Back to the first module with parameters; that one computes its parameters' gradients only
   * and the modules before it (which have none to learn) are not visited.
   */
  override backwardParameters(gradOutput: Tensor): void {
    const first = this.modules.findIndex((m) => m.parameters().length > 0);
    if (first < 0) return;
    let g = gradOutput;
    for (let i = this.modules.length - 1; i > first; i--) g = this.modules[i]!.backward(g);
    this.modules[first]!.backwardParameters(g);
  }
}
