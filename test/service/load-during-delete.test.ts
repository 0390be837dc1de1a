/**
 * A version deleted while this process loads it (another worker's or replica's DELETE, or an
 * `rm -rf` by hand) loses its files under the loader: that is not a broken checkpoint, so it is
 * neither logged as an error nor counted in normserve_model_load_failures_total (review48: with
 * WORKERS=2, a delete racing the other worker's load set off "version failed to load" and the
 * counter, which alerts on corrupt or cut files). A version whose files are there and broken
 * still is both.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ModelRegistry } from '../../src/service/index.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterEach(() => removeTempDirs());

function setUp() {
  const repository = makeTempDir('load-delete');
  copyBundledModel('digits', repository);
  const failures: number[] = [];
  const lines: { level: string; msg: string | undefined }[] = [];
  const at = (level: string) => (_: object, msg?: string) => lines.push({ level, msg });
  const registry = new ModelRegistry(repository, {
    maxBatchSize: 64,
    engine: 'js',
    log: { info: at('info'), warn: at('warn'), error: at('error') },
    onLoadFailure: (_, version) => failures.push(version),
  });
  return { repository, registry, failures, lines };
}

describe('a version that fails to load', () => {
  it('because it was deleted meanwhile: logged at info, not counted, gone after the refresh', async () => {
    const { repository, registry, failures, lines } = setUp();
    await registry.refresh();
    copyBundledModel('digits', repository, { version: 2 });
    const load = registry.repository.loadVersion.bind(registry.repository);
    vi.spyOn(registry.repository, 'loadVersion').mockImplementationOnce(async (name, version) => {
      // The deletion's rename, between the scan that listed the version and the read of its files.
      renameSync(join(repository, 'digits', '2'), join(repository, 'digits', '.gone-2'));
      return load(name, version);
    });
    await registry.refresh();
    expect(failures).toEqual([]);
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
    expect(lines).toContainEqual({ level: 'info', msg: 'version deleted while it loaded' });
    rmSync(join(repository, 'digits', '.gone-2'), { recursive: true });
    await registry.refresh();
    expect([...registry.get('digits').versions.keys()]).toEqual([1]);
    registry.close();
  });

  it('because its files are broken: logged at error and counted, as before', async () => {
    const { repository, registry, failures, lines } = setUp();
    copyBundledModel('digits', repository, { version: 2 });
    writeFileSync(join(repository, 'digits', '2', 'model.safetensors'), 'not a checkpoint');
    await registry.refresh();
    expect(failures).toEqual([2]);
    expect(lines).toContainEqual({ level: 'error', msg: 'version failed to load' });
    expect(registry.get('digits').versions.get(2)?.state).toBe('FAILED');
    registry.close();
  });
});
