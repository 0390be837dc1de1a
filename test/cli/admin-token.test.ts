/**
 * The admin token: ADMIN_TOKEN, or a generated one that reaches the operator whatever LOG_LEVEL
 * (a warning when warnings are logged, else a line on stderr, checked on a started server too).
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { adminTokenOf } from '../../src/cli/admin-token.js';
import { parseServerConfig } from '../../src/service/index.js';
import { makeRepository } from '../helpers/app.js';
import { nodeArgs, ROOT } from '../helpers/entries.js';

/** A logger that keeps its warnings, logged at `warnEnabled` (pino's isLevelEnabled). */
function warnings(warnEnabled = true) {
  const lines: { obj: unknown; msg: string }[] = [];
  const written: string[] = [];
  return {
    lines,
    written,
    logger: {
      warn: (obj: object, msg: string) => void lines.push({ obj, msg }),
      isLevelEnabled: () => warnEnabled,
    },
    stderr: { write: (text: string) => written.push(text) },
  };
}

/** Bound for a started server to print its generated token (generous: a busy 2-core machine). */
const START_BOUND_MS = 60_000;

describe('adminTokenOf', () => {
  it('is ADMIN_TOKEN when set, and logs nothing', () => {
    const { lines, written, logger, stderr } = warnings(false);
    const config = parseServerConfig({ ADMIN_TOKEN: 'a-chosen-admin-token-0123' });
    expect(adminTokenOf(config, logger, 'process', stderr)).toBe('a-chosen-admin-token-0123');
    expect(lines).toEqual([]);
    expect(written).toEqual([]);
  });

  it('generates, when unset, a fresh token the configuration would accept, logged once', () => {
    const { lines, written, logger, stderr } = warnings();
    const config = parseServerConfig({});
    const first = adminTokenOf(config, logger, 'server', stderr);
    const second = adminTokenOf(config, logger, 'process', stderr);
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
    expect(written).toEqual([]);
  });

  it('writes the generated token to stderr when the logger drops warnings', () => {
    const { lines, written, logger, stderr } = warnings(false);
    const token = adminTokenOf(parseServerConfig({}), logger, 'process', stderr);
    expect(lines).toEqual([]);
    expect(written).toEqual([
      `normserve: ADMIN_TOKEN is not set; generated an admin token for this process: ${token}\n`,
    ]);
  });

  for (const [level, workers] of [
    ['error', '1'],
    ['silent', '2'],
  ] as const) {
    it(
      `a server started with LOG_LEVEL=${level}, WORKERS=${workers} and no ADMIN_TOKEN prints its token`,
      async () => {
        const repository = makeRepository(['digits']);
        const child = spawn(process.execPath, nodeArgs('src/cli/server.ts'), {
          cwd: ROOT,
          env: {
            PATH: process.env.PATH ?? '',
            PORT: '0',
            GRPC_PORT: '0',
            WORKERS: workers,
            LOG_LEVEL: level,
            MODEL_REPOSITORY: repository,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => {
          stdout += d;
        });
        const holder = workers === '1' ? 'process' : 'server';
        const line = new RegExp(
          `^normserve: ADMIN_TOKEN is not set; generated an admin token for this ${holder}: (\\S+)$`,
          'm',
        );
        try {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(
              () => reject(new Error(`no token line: ${stderr}`)),
              START_BOUND_MS,
            );
            child.stderr.on('data', (d) => {
              stderr += d;
              if (line.test(stderr)) {
                clearTimeout(timer);
                resolve();
              }
            });
            child.on('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
          });
        } finally {
          const exited = new Promise((resolve) => child.once('close', resolve));
          if (child.exitCode === null) child.kill('SIGTERM');
          await exited;
          rmSync(repository, { recursive: true, force: true });
        }
        const token = line.exec(stderr)![1]!;
        expect(parseServerConfig({ ADMIN_TOKEN: token }).ADMIN_TOKEN).toBe(token);
        // Once: a cluster's workers use the primary's token and generate none.
        expect(stderr.match(/generated an admin token/g)).toHaveLength(1);
        expect(stdout).not.toContain(token);
      },
      2 * START_BOUND_MS,
    );
  }
});
