import { randomBytes } from 'node:crypto';
import type { ServerConfig } from '../service/server-config.js';

/** Random bytes of a generated admin token: 192 bits, 32 base64url characters. */
const GENERATED_TOKEN_BYTES = 24;

/**
 * ADMIN_TOKEN, or, when it is unset, a random token logged once (a warning) so that a local
 * `npm start` is usable; set ADMIN_TOKEN to choose it. `holder` says who uses the generated one:
 * one process (WORKERS=1), or the whole server (the cluster primary hands it to every worker).
 */
export function adminTokenOf(
  config: Pick<ServerConfig, 'ADMIN_TOKEN'>,
  logger: { warn(obj: object, msg: string): void },
  holder: 'process' | 'server',
): string {
  if (config.ADMIN_TOKEN !== undefined) return config.ADMIN_TOKEN;
  const adminToken = randomBytes(GENERATED_TOKEN_BYTES).toString('base64url');
  logger.warn(
    { adminToken },
    `ADMIN_TOKEN is not set; generated an admin token for this ${holder}`,
  );
  return adminToken;
}
