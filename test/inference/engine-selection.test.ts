/**
 * How the service picks each version's executor: ENGINE (wasm by default), one log line when the
 * runtime has no WebAssembly SIMD, helper threads closed with the versions that leave.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WasmExecutor } from '../../src/inference/index.js';
import { type Log, ModelRegistry, parseServerConfig, predict } from '../../src/service/index.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows } from '../helpers/digits.js';

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function repository(): string {
  const root = mkdtempSync(join(tmpdir(), 'normserve-engine-'));
  roots.push(root);
  copyBundledModel('digits', root);
  cpSync('test/fixtures/torch-model/digits-torch', join(root, 'digits-torch'), { recursive: true });
  return root;
}

function recordingLog(): Log & { lines: { level: string; obj: object; msg?: string }[] } {
  const lines: { level: string; obj: object; msg?: string }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => {
    lines.push(msg === undefined ? { level, obj } : { level, obj, msg });
  };
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

describe('ENGINE', () => {
  it('is wasm by default, js on request, and nothing else', () => {
    expect(parseServerConfig({}).ENGINE).toBe('wasm');
    expect(parseServerConfig({ ENGINE: 'js' }).ENGINE).toBe('js');
    expect(() => parseServerConfig({ ENGINE: 'gpu' })).toThrow(/ENGINE/);
    expect(parseServerConfig({}).ENGINE_THREADS).toBeUndefined();
    expect(parseServerConfig({ ENGINE_THREADS: '2' }).ENGINE_THREADS).toBe(2);
  });

  it('serves every version on the wasm engine by default, and on js when asked', async () => {
    for (const engine of ['wasm', 'js'] as const) {
      const registry = new ModelRegistry(repository(), { maxBatchSize: 64, engine });
      await registry.refresh();
      for (const name of ['digits', 'digits-torch'])
        expect(registry.resolve(name).compiled.executor.engine).toBe(engine);
    }
  });

  it('without WebAssembly SIMD: one log line for the process, every version on js, same answers', async () => {
    const log = recordingLog();
    const registry = new ModelRegistry(repository(), {
      maxBatchSize: 64,
      log,
      wasmSupport: { simd: false, relaxedSimd: false, threads: false },
    });
    await registry.refresh();
    const warnings = log.lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toBe(
      'WebAssembly engine unavailable; serving with the JavaScript engine',
    );
    expect(warnings[0]!.obj).toEqual({ reason: 'this runtime has no WebAssembly SIMD' });
    expect(registry.resolve('digits').compiled.executor.engine).toBe('js');
    expect(registry.resolve('digits-torch').compiled.executor.engine).toBe('js');
    const { x } = digitsTestRows();
    const out = predict(registry, { model: 'digits', rows: x.slice(0, 5) });
    expect(out.labels).toHaveLength(5);
  });

  it('closes the helper threads of the versions of a model that leaves, and all of them on close()', async () => {
    const root = repository();
    const registry = new ModelRegistry(root, { maxBatchSize: 4096, engineThreads: 2 });
    await registry.refresh();
    const [first, torch] = ['digits', 'digits-torch'].map(
      (name) => registry.resolve(name).compiled.executor as WasmExecutor,
    ) as [WasmExecutor, WasmExecutor];
    expect(first).toBeInstanceOf(WasmExecutor);
    expect(first.threads).toBe(2);
    await Promise.all([first.ready(), torch.ready()]);
    expect([first.readyHelpers, torch.readyHelpers]).toEqual([1, 1]);
    rmSync(join(root, 'digits-torch'), { recursive: true });
    await registry.refresh();
    expect(registry.list().map((m) => m.name)).toEqual(['digits']);
    expect(torch.readyHelpers).toBe(0);
    expect(first.readyHelpers).toBe(1);
    registry.close();
    expect(first.readyHelpers).toBe(0);
    // Still answers, on the calling thread.
    const { x } = digitsTestRows();
    expect(predict(registry, { model: 'digits', rows: x }).rows).toBe(360);
  });
});
