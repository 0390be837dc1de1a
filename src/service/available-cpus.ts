import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';

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
 * reads as no limit, and so does one not in the kernel's format (cgroupCpuLimit).
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

/**
 * A decimal integer as the kernel writes one (cpu_max_show, cpu_cfs_quota_read_s64): digits only,
 * no sign, exponent, hex or spaces.
 */
const decimal = z.string().regex(/^\d+$/).transform(Number).pipe(z.number().int());
const positiveDecimal = decimal.pipe(z.number().positive());
/** A cgroup file's one line: its text without the kernel's final newline. */
const line = z.string().transform((text) => (text.endsWith('\n') ? text.slice(0, -1) : text));

/** cgroup v2 cpu.max: `max <period>` or `<quota> <period>`, exactly (one space, two fields). */
const cpuMaxSchema = line
  .transform((text) => text.split(' '))
  .pipe(z.tuple([z.union([z.literal('max'), decimal]), positiveDecimal]));
/** cgroup v1 cpu.cfs_quota_us: a decimal quota in µs, or -1 (no limit). */
const cfsQuotaSchema = line.pipe(z.union([z.literal('-1'), decimal]));
/** cgroup v1 cpu.cfs_period_us: a positive decimal period in µs. */
const cfsPeriodSchema = line.pipe(positiveDecimal);

/**
 * The cgroup's CPU bandwidth limit in whole CPUs (floor, at least 1); undefined: none found. A
 * file whose text is not the kernel's format (`0x30000 100000`, `200000 100000 7`, a quota of
 * `4e5`) reads as no limit, as a missing one does, and silently: the callers are the defaults of
 * WORKERS and ENGINE_THREADS, computed while the configuration is parsed, before any logger
 * exists; an operator who sees the wrong count sets those two.
 */
export function cgroupCpuLimit(root: string): number | undefined {
  const v2 = readText(join(root, 'cpu.max'));
  if (v2 !== undefined) {
    const parsed = cpuMaxSchema.safeParse(v2);
    if (!parsed.success) return undefined;
    const [quota, period] = parsed.data;
    return quota === 'max' ? undefined : wholeCpus(quota, period);
  }
  for (const controller of ['cpu', 'cpu,cpuacct']) {
    const quotaText = readText(join(root, controller, 'cpu.cfs_quota_us'));
    const periodText = readText(join(root, controller, 'cpu.cfs_period_us'));
    if (quotaText === undefined || periodText === undefined) continue;
    const quota = cfsQuotaSchema.safeParse(quotaText);
    const period = cfsPeriodSchema.safeParse(periodText);
    if (!(quota.success && period.success) || quota.data === '-1') return undefined;
    return wholeCpus(quota.data, period.data);
  }
  return undefined;
}

/** quota ÷ period CPUs, floored, at least 1; undefined for a quota of 0 (not a limit the kernel sets). */
function wholeCpus(quota: number, period: number): number | undefined {
  if (quota <= 0) return undefined;
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
