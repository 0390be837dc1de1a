import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/**
 * The CPUs this process may use: the CPUs it may run on (availableParallelism: the affinity mask),
 * bounded by its cgroup's CPU bandwidth limit. Node 20's libuv (1.46) does not read the limit
 * (libuv 1.49 does), so a pod limited to 2 CPUs on a 16-core node sees 16. The defaults sized by
 * CPU count — WORKERS, ENGINE_THREADS — come from here.
 *
 * The limit is quota ÷ period rounded down, at least 1, as uber-go/automaxprocs does: CPU-bound
 * threads beyond the quota do not run faster, they use up each period's quota early and are all
 * throttled until the next (with 1.5 CPUs, two busy threads run 75 ms of each 100 ms period,
 * then none for 25 ms, a pause in every request computing then); one thread fewer never is.
 *
 * Read: cgroup v2's `cpu.max` (`<quota> <period>`, or `max <period>`: no limit) at the root of
 * the cgroup filesystem, which a container with its own cgroup namespace (Kubernetes, Docker on
 * cgroup v2) sees as its own cgroup; else cgroup v1's `cpu/cpu.cfs_quota_us` and
 * `cpu.cfs_period_us` (quota -1: no limit; also under `cpu,cpuacct/`). A limit set only on an
 * ancestor cgroup the container cannot see is not read; a file that is missing or unreadable
 * reads as no limit.
 */
export function availableCpus(
  options: {
    /** Where the cgroup filesystem is mounted (tests give a fake tree). */
    cgroupRoot?: string;
    /** The CPUs the process may run on (default: availableParallelism()). */
    parallelism?: number;
  } = {},
): number {
  const parallelism = options.parallelism ?? availableParallelism();
  const limit = cgroupCpuLimit(options.cgroupRoot ?? CGROUP_ROOT);
  return limit === undefined ? parallelism : Math.min(parallelism, limit);
}

const CGROUP_ROOT = '/sys/fs/cgroup';

/** The cgroup's CPU bandwidth limit in whole CPUs (floor, at least 1); undefined: none found. */
export function cgroupCpuLimit(root: string): number | undefined {
  const v2 = readText(join(root, 'cpu.max'));
  if (v2 !== undefined) {
    const [quota, period] = v2.trim().split(/\s+/);
    return wholeCpus(Number(quota), Number(period));
  }
  for (const controller of ['cpu', 'cpu,cpuacct']) {
    const quota = readText(join(root, controller, 'cpu.cfs_quota_us'));
    const period = readText(join(root, controller, 'cpu.cfs_period_us'));
    if (quota !== undefined && period !== undefined)
      return wholeCpus(Number(quota.trim()), Number(period.trim()));
  }
  return undefined;
}

/** quota ÷ period CPUs, floored, at least 1; undefined for no limit (`max`, -1) or nonsense. */
function wholeCpus(quota: number, period: number): number | undefined {
  if (!(Number.isFinite(quota) && quota > 0 && Number.isFinite(period) && period > 0))
    return undefined;
  return Math.max(1, Math.floor(quota / period));
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

let cached: number | undefined;

/** availableCpus() of this process, read once (the limit is a pod's, fixed while it runs). */
export function processCpus(): number {
  cached ??= availableCpus();
  return cached;
}
