import { NormserveError } from '../errors/index.js';

/** The variables a start-up line names: the port's (PORT or GRPC_PORT) and the address's. */
export interface ListenVariables {
  /** Prefixed to Node's message: '' for HTTP, 'gRPC: ' for gRPC. */
  prefix: string;
  /** What to change when the port cannot be bound: `set PORT to a free port`. */
  portHint: string;
}

const HOST_HINT = 'set HOST to an address of this machine (or a name that resolves to one)';

/**
 * What a failed listen says about the configuration, from Node's error (`syscall`, errno `code`):
 * the port is taken or not permitted (listen/bind EADDRINUSE, EACCES), or the address is not this
 * machine's or no address at all (EADDRNOTAVAIL, getaddrinfo ENOTFOUND, EAI_*); undefined for
 * anything else. Fastify's listen also loads the plugins (avvio), so its errors — FST_ERR_*,
 * AVV_ERR_*, a plugin's own — come this way too and are no listen failure.
 */
export function listenProblem(e: unknown): 'port' | 'host' | undefined {
  if (!(e instanceof Error)) return undefined;
  const { code, syscall } = e as { code?: unknown; syscall?: unknown };
  if (typeof code !== 'string') return undefined;
  if ((syscall === 'listen' || syscall === 'bind') && (code === 'EADDRINUSE' || code === 'EACCES'))
    return 'port';
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code.startsWith('EAI_')) return 'host';
  return undefined;
}

/**
 * A port that cannot be bound (taken, not permitted) or an address that is not this machine's
 * stops the start: one line (LISTEN_FAILED) naming the address (Node's error) and the variable to
 * change. Any other error is returned as it is.
 */
export function listenFailed(e: unknown, variables: ListenVariables): unknown {
  const problem = listenProblem(e);
  if (problem === undefined) return e;
  const hint = problem === 'port' ? variables.portHint : HOST_HINT;
  return new NormserveError(
    'LISTEN_FAILED',
    `${variables.prefix}${(e as Error).message}; ${hint}`,
    {
      cause: e,
    },
  );
}
