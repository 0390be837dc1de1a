import { setLogger } from '@grpc/grpc-js';

/** Where grpc-js's own log lines go: a pino logger's warn and debug levels satisfy it. */
export interface GrpcJsLog {
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/**
 * Sends grpc-js's own log lines (by default `E …` lines on stderr, written by console.error) to
 * the server's log, as JSON lines like every other. grpc-js's ERROR lines go to warn, so they show
 * at the default LOG_LEVEL: most are also reported by normserve (a failed bind reaches listenGrpc
 * and stops the start with one line; a client's bad metadata is the call's own status), but one
 * that is not (a session or stream failure inside grpc-js) must not be invisible. Warn, not error:
 * a client's bad request is not the server's error. grpc-js's INFO and DEBUG chatter stays at
 * debug (LOG_LEVEL=debug shows it). GRPC_VERBOSITY and GRPC_TRACE still choose which lines grpc-js
 * writes. grpc-js keeps one logger per process.
 */
export function routeGrpcJsLog(log: GrpcJsLog): void {
  const line =
    (severity: 'error' | 'info' | 'debug') =>
    (message?: unknown, ...rest: unknown[]) => {
      const fields = {
        grpcJs: severity,
        ...(rest.length > 0 ? { details: rest.map(String) } : {}),
      };
      if (severity === 'error') log.warn(fields, String(message));
      else log.debug(fields, String(message));
    };
  setLogger({ error: line('error'), info: line('info'), debug: line('debug') });
}
