import { randomBytes } from 'node:crypto';
import type { ServerConfig } from '../service/server-config.js';

/** Random bytes of a generated admin token: 192 bits, 32 base64url characters. */
const GENERATED_TOKEN_BYTES = 24;

/** The logger's side adminTokenOf uses (a pino logger has both). */
export interface TokenLogger {
  warn(obj: object, msg: string): void;
  isLevelEnabled(level: 'warn'): boolean;
}

/**
 * ADMIN_TOKEN, or, when it is unset, a random token logged once (a warning) so that a local
 * `npm start` is usable; set ADMIN_TOKEN to choose it. `holder` says who uses the generated one:
 * one process (WORKERS=1), or the whole server (the cluster primary hands it to every worker).
 * A LOG_LEVEL that drops warnings (error, fatal, silent) would drop the only copy of the token,
 * leaving an admin API nobody can call: the line is then written to `stderr` itself.
 */
export function adminTokenOf(
  config: Pick<ServerConfig, 'ADMIN_TOKEN'>,
  logger: TokenLogger,
  holder: 'process' | 'server',
  stderr: { write(text: string): unknown } = process.stderr,
): string {
  if (config.ADMIN_TOKEN !== undefined) return config.ADMIN_TOKEN;
  const adminToken = randomBytes(GENERATED_TOKEN_BYTES).toString('base64url');
  const msg = `ADMIN_TOKEN is not set; generated an admin token for this ${holder}`;
  if (logger.isLevelEnabled('warn')) logger.warn({ adminToken }, msg);
  else stderr.write(`normserve: ${msg}: ${adminToken}\n`);
  return adminToken;
}
