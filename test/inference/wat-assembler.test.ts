/**
 * The engine's WebAssembly is assembled in-process by src/nn/wasm/wat-assembler.ts; wabt
 * (the WebAssembly Binary Toolkit's own assembler) is the oracle: the same text, the same bytes.
 */
import { describe, expect, it } from 'vitest';
import wabtInit from 'wabt';
import { engineModuleText } from '../../src/inference/wasm/engine-module.js';
import { assembleWat, WatError } from '../../src/nn/wasm/index.js';

const wabt = await wabtInit();
const features = { simd: true, relaxed_simd: true, threads: true };
const byWabt = (text: string): Uint8Array => {
  const module = wabt.parseWat('engine.wat', text, features);
  try {
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
};

describe('WAT assembler', () => {
  const partSets = {
    'every part': { elementwise: true, cnn: true },
    'the GEMM and the interpreter only': { elementwise: false, cnn: false },
    'the element-wise part': { elementwise: true, cnn: false },
  };
  for (const relaxed of [false, true]) {
    for (const [name, parts] of Object.entries(partSets)) {
      it(`assembles the engine module, ${name} (relaxed SIMD ${relaxed ? 'on' : 'off'}), exactly as wabt does`, () => {
        const text = engineModuleText(relaxed, parts);
        const ours = assembleWat(text);
        const theirs = byWabt(text);
        expect(ours.length).toBe(theirs.length);
        expect(Buffer.from(ours).equals(Buffer.from(theirs))).toBe(true);
        // Relaxed SIMD validates only where the runtime has it on (a V8 flag on Node 20).
        if (!relaxed) expect(WebAssembly.validate(ours)).toBe(true);
      });
    }
  }

  it('assembles plain and folded instructions, labels, constants and a defined memory alike', () => {
    const text = `(module (memory $m 1 2)
      (func $f (export "f") (param $x f64) (param i32) (result f64) (local $y f64)
        local.get $x
        (local.set $y (f64.mul (local.get 0) (f64.const -2.5e-3)))
        (block $out (loop $again
          (br_if $out (i32.eqz (local.get 1)))
          (local.set 1 (i32.sub (local.get 1) (i32.const 1)))
          (br $again)))
        (f64.add (local.get $y))
        (f32.store offset=8 align=4 (i32.const 0) (f32.const -inf))))`;
    expect(Buffer.from(assembleWat(text)).equals(Buffer.from(byWabt(text)))).toBe(true);
  });

  it('names what it cannot assemble', () => {
    expect(() => assembleWat('(module (func (i32.frobnicate)))')).toThrow(
      /unknown instruction i32\.frobnicate/,
    );
    expect(() => assembleWat('(module (func (local.get $nope)))')).toThrow(/unknown local \$nope/);
    expect(() => assembleWat('(module (func (br $nowhere)))')).toThrow(/unknown label \$nowhere/);
    expect(() => assembleWat('(module (func)')).toThrow(WatError);
  });
});
