import { lookup } from 'node:dns/promises';
import { createServer } from 'node:net';
import type { ServerConfig } from '../service/server-config.js';
import { listenFailed, listenProblem } from './listen-failure.js';

/** How each listening port is named when it cannot be bound (the same words as the real listen's). */
const PORTS = [
  { variable: 'PORT', prefix: '', portHint: 'set PORT to a free port' },
  {
    variable: 'GRPC_PORT',
    prefix: 'gRPC: ',
    portHint: 'set GRPC_PORT to a free port (0 = no gRPC server)',
  },
] as const;

/**
 * Binds and at once closes each configured port (PORT, and GRPC_PORT unless 0) on HOST, before
 * anything slow: a port taken by another process, or a HOST that is not this machine's, stopped
 * the start only once every model had loaded (newcomer review of 2026-12-04), and with
 * WORKERS > 1 once every worker had. The real listens come later and can still fail (a port taken
 * in between), with the same line. Port 0 (any free port) is not checked.
 */
export async function checkPortsBindable(
  config: Pick<ServerConfig, 'HOST' | 'PORT' | 'GRPC_PORT'>,
): Promise<void> {
  const ports = PORTS.filter(({ variable }) => config[variable] !== 0);
  if (ports.length === 0) return;
  // Every address HOST names, as the listens bind them (`localhost`: 127.0.0.1 and ::1); a name
  // that does not resolve is HOST's line (listenFailed).
  const addresses = await lookup(config.HOST, { all: true }).catch((e: unknown) => {
    throw listenFailed(e, PORTS[0]);
  });
  for (const { variable, ...words } of ports) {
    let bound = 0;
    let unavailable: unknown;
    for (const { address } of addresses) {
      const failure = await bindAndClose(config[variable], address);
      if (failure === undefined) bound++;
      // A port taken on any address stops the start; an address this machine lacks (::1 with
      // IPv6 off) only when no address is left, as Fastify and grpc-js skip it when another binds.
      else if (listenProblem(failure) === 'host') unavailable ??= failure;
      else throw listenFailed(failure, words);
    }
    if (bound === 0 && unavailable !== undefined) throw listenFailed(unavailable, words);
  }
}

/** Binds `port` on `address` and closes it at once: the error of the bind, or undefined. */
async function bindAndClose(port: number, address: string): Promise<unknown> {
  const probe = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ port, host: address, exclusive: true }, () => resolve());
    });
  } catch (e) {
    return e;
  }
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return undefined;
}
