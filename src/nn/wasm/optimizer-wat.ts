import { elementMap } from './f64-lanes-wat.js';

/**
 * The optimizer steps of nn/adam.ts and nn/sgd.ts as WebAssembly: the same float64 expressions in
 * the same order, rounded to float32 where the JavaScript stores into a Float32Array, so a step
 * gives the same bits as the reference loop (test/nn/training-kernels.test.ts). One pass over a
 * parameter's four arrays instead of a loop of scalar JavaScript.
 */

/**
 * adam_step(θ, g, m, v, count, decay, weight_decay, β1, 1 − β1, β2, 1 − β2, step_size,
 * √(1 − β2ᵗ), ε, mode): mode 0 no weight decay, 1 decoupled (AdamW: θ ← θ·decay first), 2 L2 (Adam:
 * g ← g + λ·θ). See nn/adam.ts for the update.
 */
const adam = elementMap({
  name: 'adam_step',
  inputs: ['theta', 'grad', 'm', 'v'],
  outputs: ['theta', 'm', 'v'],
  scalars: ['decay', 'wd', 'beta1', 'omb1', 'beta2', 'omb2', 'step', 'bc2', 'eps'],
  flags: ['mode'],
  body: (t) => `
    (if (i32.eq (local.get $mode) (i32.const 1))
      (then ${t.set('theta', t.f32(t.op('mul', t.get('theta'), t.k('decay'))))}))
    (if (i32.eq (local.get $mode) (i32.const 2))
      (then ${t.set('grad', t.op('add', t.get('grad'), t.op('mul', t.k('wd'), t.get('theta'))))}))
    ${t.set('m', t.f32(t.op('add', t.op('mul', t.k('beta1'), t.get('m')), t.op('mul', t.k('omb1'), t.get('grad')))))}
    ${t.set(
      'v',
      t.f32(
        t.op(
          'add',
          t.op('mul', t.k('beta2'), t.get('v')),
          t.op('mul', t.op('mul', t.k('omb2'), t.get('grad')), t.get('grad')),
        ),
      ),
    )}
    ${t.set(
      'theta',
      t.op(
        'sub',
        t.get('theta'),
        t.op(
          'div',
          t.op('mul', t.k('step'), t.get('m')),
          t.op('add', t.op('div', t.op('sqrt', t.get('v')), t.k('bc2')), t.k('eps')),
        ),
      ),
    )}`,
});

/** sgd_step(θ, g, count, weight_decay, lr): θ ← θ − lr·(g + λ·θ) (no momentum). */
const sgd = elementMap({
  name: 'sgd_step',
  inputs: ['theta', 'grad'],
  outputs: ['theta'],
  scalars: ['wd', 'lr'],
  body: (t) => `
    ${t.set('grad', t.op('add', t.get('grad'), t.op('mul', t.k('wd'), t.get('theta'))))}
    ${t.set('theta', t.op('sub', t.get('theta'), t.op('mul', t.k('lr'), t.get('grad'))))}`,
});

/**
 * sgd_momentum_step(θ, g, b, count, weight_decay, μ, 1 − dampening, lr, first, nesterov):
 * g ← g + λ·θ; b ← g on the first step, else μ·b + (1 − dampening)·g; g ← g + μ·b (Nesterov)
 * or b; θ ← θ − lr·g.
 */
const sgdMomentum = elementMap({
  name: 'sgd_momentum_step',
  inputs: ['theta', 'grad', 'buf'],
  outputs: ['theta', 'buf'],
  scalars: ['wd', 'momentum', 'omd', 'lr'],
  flags: ['first', 'nesterov'],
  body: (t) => `
    ${t.set('grad', t.op('add', t.get('grad'), t.op('mul', t.k('wd'), t.get('theta'))))}
    (if (local.get $first)
      (then ${t.set('buf', t.f32(t.get('grad')))})
      (else ${t.set('buf', t.f32(t.op('add', t.op('mul', t.k('momentum'), t.get('buf')), t.op('mul', t.k('omd'), t.get('grad')))))}))
    (if (local.get $nesterov)
      (then ${t.set('grad', t.op('add', t.get('grad'), t.op('mul', t.k('momentum'), t.get('buf'))))})
      (else ${t.set('grad', t.get('buf'))}))
    ${t.set('theta', t.op('sub', t.get('theta'), t.op('mul', t.k('lr'), t.get('grad'))))}`,
});

export function optimizerWat(): string {
  return [adam, sgd, sgdMomentum].join('\n');
}
