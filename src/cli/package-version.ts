import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** normserve's version from package.json (two levels above src/cli and dist/cli). */
export function packageVersion(): string {
  try {
    return z
      .object({ version: z.string() })
      .parse(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')))
      .version;
  } catch {
    return '0.0.0';
  }
}
