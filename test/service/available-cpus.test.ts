/**
 * The CPUs a process may use: availableParallelism bounded by its cgroup's CPU bandwidth limit
 * (cgroup v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us), read from a fake cgroup tree.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { availableCpus, cgroupCpuLimit } from '../../src/service/available-cpus.js';
import { defaultEngineThreads } from '../../src/service/engine-runtime.js';

const roots: string[] = [];
afterAll(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A fake cgroup filesystem holding `files` (path relative to the root → content). */
function cgroupTree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'normserve-cgroup-'));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('cgroup v2 cpu.max', () => {
  it('a 2-CPU limit (Kubernetes limits.cpu: "2") on a 16-CPU node gives 2', () => {
    const root = cgroupTree({ 'cpu.max': '200000 100000\n' });
    expect(cgroupCpuLimit(root)).toBe(2);
    expect(availableCpus({ cgroupRoot: root, parallelism: 16 })).toBe(2);
  });

  it('"max" is no limit: the CPUs the process may run on', () => {
    const root = cgroupTree({ 'cpu.max': 'max 100000\n' });
    expect(cgroupCpuLimit(root)).toBeUndefined();
    expect(availableCpus({ cgroupRoot: root, parallelism: 16 })).toBe(16);
  });

  it('a fractional limit is rounded down, to at least 1 (automaxprocs)', () => {
    expect(cgroupCpuLimit(cgroupTree({ 'cpu.max': '150000 100000' }))).toBe(1);
    expect(cgroupCpuLimit(cgroupTree({ 'cpu.max': '250000 100000' }))).toBe(2);
    expect(cgroupCpuLimit(cgroupTree({ 'cpu.max': '50000 100000' }))).toBe(1);
    expect(cgroupCpuLimit(cgroupTree({ 'cpu.max': '10000 100000' }))).toBe(1);
  });

  it('never more than the CPUs the process may run on', () => {
    const root = cgroupTree({ 'cpu.max': '800000 100000' });
    expect(availableCpus({ cgroupRoot: root, parallelism: 4 })).toBe(4);
  });

  it('an unreadable value is no limit', () => {
    expect(cgroupCpuLimit(cgroupTree({ 'cpu.max': '' }))).toBeUndefined();
    expect(cgroupCpuLimit(cgroupTree({ 'cpu.max': 'garbage' }))).toBeUndefined();
    expect(cgroupCpuLimit(cgroupTree({ 'cpu.max': '200000 0' }))).toBeUndefined();
  });

  it("a value not in the kernel's format is no limit, not what Number() makes of it", () => {
    // Number('0x30000') is 196,608: 1 CPU; a third field was ignored.
    expect(cgroupCpuLimit(cgroupTree({ 'cpu.max': '0x30000 100000' }))).toBeUndefined();
    expect(cgroupCpuLimit(cgroupTree({ 'cpu.max': '200000 100000 7' }))).toBeUndefined();
    expect(cgroupCpuLimit(cgroupTree({ 'cpu.max': '4e5 100000' }))).toBeUndefined();
    expect(cgroupCpuLimit(cgroupTree({ 'cpu.max': '200000 100000\n\n' }))).toBeUndefined();
    expect(cgroupCpuLimit(cgroupTree({ 'cpu.max': '200000 100000' }))).toBe(2);
  });
});

describe('cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us', () => {
  it('reads cpu/ and cpu,cpuacct/', () => {
    const v1 = (dir: string, quota: string) =>
      cgroupTree({ [`${dir}/cpu.cfs_quota_us`]: quota, [`${dir}/cpu.cfs_period_us`]: '100000\n' });
    expect(availableCpus({ cgroupRoot: v1('cpu', '300000\n'), parallelism: 8 })).toBe(3);
    expect(availableCpus({ cgroupRoot: v1('cpu,cpuacct', '150000\n'), parallelism: 8 })).toBe(1);
  });

  it('quota -1 is no limit', () => {
    const root = cgroupTree({
      'cpu/cpu.cfs_quota_us': '-1\n',
      'cpu/cpu.cfs_period_us': '100000\n',
    });
    expect(availableCpus({ cgroupRoot: root, parallelism: 8 })).toBe(8);
  });

  it("a quota or period not in the kernel's format is no limit", () => {
    const v1 = (quota: string, period = '100000\n') =>
      cgroupCpuLimit(
        cgroupTree({ 'cpu/cpu.cfs_quota_us': quota, 'cpu/cpu.cfs_period_us': period }),
      );
    // Number('4e5') is 400,000: 4 CPUs.
    expect(v1('4e5\n')).toBeUndefined();
    expect(v1('0x30000\n')).toBeUndefined();
    expect(v1('-2\n')).toBeUndefined();
    expect(v1('400000 7\n')).toBeUndefined();
    expect(v1('400000\n', '1e5\n')).toBeUndefined();
    expect(v1('400000\n', '0\n')).toBeUndefined();
    expect(v1('400000\n')).toBe(4);
  });

  it('a quota without its period is no limit', () => {
    const root = cgroupTree({ 'cpu/cpu.cfs_quota_us': '200000\n' });
    expect(cgroupCpuLimit(root)).toBeUndefined();
  });
});

it('no cgroup files (not Linux, no cgroup filesystem): the CPUs the process may run on', () => {
  const root = cgroupTree({});
  expect(availableCpus({ cgroupRoot: root, parallelism: 6 })).toBe(6);
  expect(availableCpus({ cgroupRoot: join(root, 'absent'), parallelism: 6 })).toBe(6);
});

it('ENGINE_THREADS by default: the limited CPUs shared by the workers', () => {
  // The Deployment: a 2-CPU limit, WORKERS=2, on a 16-core node: 1 thread each, not 8.
  const cpus = availableCpus({
    cgroupRoot: cgroupTree({ 'cpu.max': '200000 100000' }),
    parallelism: 16,
  });
  expect(defaultEngineThreads(2, cpus)).toBe(1);
  expect(defaultEngineThreads(1, cpus)).toBe(2);
  expect(defaultEngineThreads(4, cpus)).toBe(1);
});
