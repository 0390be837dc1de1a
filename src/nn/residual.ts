import { NormserveError } from '../errors/index.js';
import { relu } from './activation-functions.js';
import { Container, type Module, requireCache } from './module.js';
import { Sequential } from './sequential.js';
import { Tensor } from './tensor.js';

/**
 * The residual block with an identity skip, out = relu(body(x) + x) (He et al. 2016, "Deep
 * Residual Learning for Image Recognition", fig. 2: the final ReLU belongs to the block). The body
 * is an nn.Sequential named `body`, so its tensors are `body.<j>.<name>` as in the PyTorch module
 *
 *   class Residual(nn.Module):
 *       def __init__(self, *layers): super().__init__(); self.body = nn.Sequential(*layers)
 *       def forward(self, x): return torch.relu(self.body(x) + x)
 */
export class Residual extends Container {
  /** The name of the body, PyTorch's attribute: its layers' tensors are `body.<j>.<name>`. */
  static readonly BODY = 'body';

  /**
   * The name of body layer j within the block (`body.3`), as children() and the body's
   * Sequential name it: the one definition the layer record's childName and the compile rule's
   * paths use.
   */
  static childName(j: number): string {
    return `${Residual.BODY}.${Sequential.childName(j)}`;
  }

  readonly kind = 'Residual';
  readonly body: Sequential;
  private output: Tensor | undefined;

  constructor(body: readonly Module[]) {
    super();
    this.body = new Sequential(body);
  }

  override children(): readonly (readonly [string, Module])[] {
    return [[Residual.BODY, this.body]];
  }

  forward(input: Tensor): Tensor {
    const y = this.body.forward(input);
    if (y.shape.length !== input.shape.length || y.shape.some((d, i) => d !== input.shape[i])) {
      throw new NormserveError(
        'SHAPE_MISMATCH',
        `Residual: the body maps [${input.shape}] to [${y.shape}]; an identity skip needs the same shape`,
      );
    }
    const x = input.data;
    const b = y.data;
    const out = new Float32Array(x.length);
    // float32 sum, then ReLU (the sum is rounded before the comparison, as PyTorch's add then relu).
    for (let i = 0; i < out.length; i++) out[i] = relu(Math.fround(b[i]! + x[i]!));
    this.output = new Tensor(out, input.shape);
    return this.output;
  }

  backward(gradOutput: Tensor): Tensor {
    const out = requireCache(this.output, this.kind).data;
    const g = gradOutput.data;
    // ReLU' at 0 is 0 (PyTorch's threshold_backward); the sum passes the gradient to both paths.
    const gs = new Float32Array(g.length);
    for (let i = 0; i < g.length; i++) gs[i] = out[i]! > 0 ? g[i]! : 0;
    const gBody = this.body.backward(new Tensor(gs, gradOutput.shape)).data;
    const dx = new Float32Array(g.length);
    for (let i = 0; i < g.length; i++) dx[i] = gBody[i]! + gs[i]!;
    return new Tensor(dx, gradOutput.shape);
  }
}
