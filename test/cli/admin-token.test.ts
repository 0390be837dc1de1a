import { describe, expect, it } from 'vitest';
import { adminTokenOf } from '../../src/cli/admin-token.js';
import { parseServerConfig } from '../../src/service/index.js';

/** A logger that keeps its warnings. */
function warnings() {
  const lines: { obj: unknown; msg: string }[] = [];
  return { lines, logger: { warn: (obj: object, msg: string) => void lines.push({ obj, msg }) } };
}

describe('adminTokenOf', () => {
  it('is ADMIN_TOKEN when set, and logs nothing', () => {
    const { lines, logger } = warnings();
    const config = parseServerConfig({ ADMIN_TOKEN: 'a-chosen-admin-token-0123' });
    expect(adminTokenOf(config, logger, 'process')).toBe('a-chosen-admin-token-0123');
    expect(lines).toEqual([]);
  });

  it('generates, when unset, a fresh token the configuration would accept, logged once', () => {
    const { lines, logger } = warnings();
    const config = parseServerConfig({});
    const first = adminTokenOf(config, logger, 'server');
    const second = adminTokenOf(config, logger, 'process');
    expect(first).not.toBe(second);
    // What the cluster primary hands its workers through ADMIN_TOKEN parses as one.
    expect(parseServerConfig({ ADMIN_TOKEN: first }).ADMIN_TOKEN).toBe(first);
    expect(lines).toEqual([
      {
        obj: { adminToken: first },
        msg: 'ADMIN_TOKEN is not set; generated an admin token for this server',
      },
      {
        obj: { adminToken: second },
        msg: 'ADMIN_TOKEN is not set; generated an admin token for this process',
      },
    ]);
  });
});
