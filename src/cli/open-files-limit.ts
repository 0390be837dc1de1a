import { readFileSync } from 'node:fs';
import type { ServerConfig } from '../service/index.js';

/**
 * Descriptors a server process needs beside its connections: the listening sockets, the model
 * files a load opens, a recalibration's spill file, the job and lock files, the IPC channel, the
 * engine's helper threads' pipes, stdio. A generous count: what matters is the order of magnitude.
 */
export const OTHER_DESCRIPTORS = 128;

/**
 * The soft limit of open files of this process, from Linux's /proc/self/limits (Node raises it to
 * the hard limit at start); undefined where that file is not (macOS), unreadable or says
 * "unlimited".
 */
export function openFilesLimit(limits: string | undefined = readLimits()): number | undefined {
  const line = limits?.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  const n = Number(soft);
  return soft !== undefined && Number.isInteger(n) && n > 0 ? n : undefined;
}

function readLimits(): string | undefined {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The start's warning when the open files limit is below what MAX_CONNECTIONS lets each process
 * hold (on each port: HTTP, and gRPC unless GRPC_PORT is 0) plus OTHER_DESCRIPTORS: there, idle
 * connections exhaust the descriptors before MAX_CONNECTIONS turns any away, and every file the
 * server then opens fails with EMFILE (a model's files, a recalibration's records; health checks
 * on new connections go unanswered; attack review of 2026-12-06, at `ulimit -n 1024`).
 */
export function openFilesWarning(
  config: Pick<ServerConfig, 'MAX_CONNECTIONS' | 'GRPC_PORT'>,
  limit: number | undefined = openFilesLimit(),
): string | undefined {
  if (limit === undefined) return undefined;
  const ports = config.GRPC_PORT === 0 ? 1 : 2;
  const needed = ports * config.MAX_CONNECTIONS + OTHER_DESCRIPTORS;
  if (limit >= needed) return undefined;
  return `warning: this process may open ${limit} files (ulimit -n), fewer than the ${needed} that MAX_CONNECTIONS (${config.MAX_CONNECTIONS}) on ${ports === 2 ? 'each of its 2 ports' : 'its port'} and ${OTHER_DESCRIPTORS} more need: idle connections can take every descriptor and the server's own files then fail to open (EMFILE); raise the limit (ulimit -n, the container's nofile, systemd's LimitNOFILE) or lower MAX_CONNECTIONS to ${Math.max(1, Math.floor((limit - OTHER_DESCRIPTORS) / ports))}`;
}
