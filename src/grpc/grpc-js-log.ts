import { setLogger } from '@grpc/grpc-js';

/** Where grpc-js's own log lines go: a pino logger's debug level satisfies it. */
export interface DebugLog {
  debug(obj: object, msg?: string): void;
}

/**
 * Sends grpc-js's own log lines (by default `E …` lines on stderr, written by console.error) to
 * the server's log at debug level, as JSON lines like every other. Debug, not error: what grpc-js
 * logs at ERROR on a server is also handed to normserve, which reports it itself — a failed bind
 * reaches listenGrpc's callback and stops the start with one line — or is a client's bad metadata,
 * which the call's own status reports. GRPC_VERBOSITY and GRPC_TRACE still choose which lines
 * grpc-js writes; LOG_LEVEL=debug shows them. grpc-js keeps one logger per process.
 */
export function routeGrpcJsLog(log: DebugLog): void {
  const line =
    (severity: string) =>
    (message?: unknown, ...rest: unknown[]) =>
      log.debug(
        { grpcJs: severity, ...(rest.length > 0 ? { details: rest.map(String) } : {}) },
        String(message),
      );
  setLogger({ error: line('error'), info: line('info'), debug: line('debug') });
}
