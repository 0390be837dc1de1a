import { createServer } from 'node:net';
import type { ServerConfig } from '../service/server-config.js';
import { listenFailed } from './listen-failure.js';

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
  for (const { variable, ...words } of PORTS) {
    const port = config[variable];
    if (port === 0) continue;
    const probe = createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ port, host: config.HOST, exclusive: true }, () => resolve());
    }).catch((e: unknown) => {
      throw listenFailed(e, words);
    });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  }
}
