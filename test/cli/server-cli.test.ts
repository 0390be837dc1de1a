/**
 * The server's command line and configuration messages: `--help` prints usage and starts nothing,
 * an argument is an error (the environment is the configuration), an invalid variable is named
 * with what was expected and what was given; `npm run grpc -- --help` prints its usage.
 */

import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  OTHER_DESCRIPTORS,
  openFilesLimit,
  openFilesWarning,
} from '../../src/cli/open-files-limit.js';
import { parseServerConfig } from '../../src/service/index.js';
import { nodeArgs, ROOT } from '../helpers/entries.js';

/** Runs the server CLI; a server that started instead would be killed after `timeout`. */
function serverCli(args: readonly string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [...nodeArgs('src/cli/server.ts'), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', PORT: '0', GRPC_PORT: '0', WORKERS: '1', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

describe('the server CLI', () => {
  for (const flag of ['--help', '-h']) {
    it(`${flag} prints usage and the main variables, starts no server and exits 0`, () => {
      const result = serverCli([flag]);
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^Usage: normserve /);
      expect(result.stdout).toContain('README.md, section Configuration');
      for (const variable of ['PORT', 'GRPC_PORT', 'MODEL_REPOSITORY', 'WORKERS', 'ADMIN_TOKEN'])
        expect(result.stdout).toMatch(new RegExp(`^  ${variable} +\\S`, 'm'));
      expect(result.stdout).toContain('(default 8080)');
      expect(result.stdout).not.toContain('Server listening');
    });
  }

  for (const args of [['--port', '9000'], ['serve']]) {
    it(`${args.join(' ')} is an error: one line naming it, a pointer to --help, exit 1`, () => {
      const result = serverCli(args);
      expect(result.status, result.stderr).toBe(1);
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^normserve: error: (unknown option '--port'|too many arguments)/);
      expect(lines.at(-1)).toContain('see --help');
      expect(result.stdout).toBe('');
    });
  }
});

describe('an invalid server configuration says what was expected and what was given', () => {
  for (const [variable, value, message] of [
    ['PORT', 'abc', 'PORT: expected an integer from 0 to 65535, got "abc"'],
    ['PORT', '70000', 'PORT: expected an integer from 0 to 65535, got 70000'],
    [
      'GRPC_PORT',
      '1.5',
      'GRPC_PORT: expected an integer from 0 to 65535, got 1.5 (0 = no gRPC server)',
    ],
    [
      'ADMIN_RATE_LIMIT_PER_MINUTE',
      '0',
      'ADMIN_RATE_LIMIT_PER_MINUTE: expected an integer ≥ 1, got 0',
    ],
    [
      'DRIFT_SAMPLE_FRACTION',
      'half',
      'DRIFT_SAMPLE_FRACTION: expected a number from 0 to 1, got "half"',
    ],
    ['DRIFT_THRESHOLD', '0', 'DRIFT_THRESHOLD: expected a number above 0, at most 100, got 0'],
    [
      'LOG_LEVEL',
      'loud',
      'LOG_LEVEL: expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud"',
    ],
    ['HOST', '', 'HOST: must not be empty'],
    // Empty is no number (Number('') is 0: PORT='' was a random port).
    ['PORT', '', 'PORT: expected an integer from 0 to 65535, got ""'],
    [
      'GRPC_PORT',
      ' ',
      'GRPC_PORT: expected an integer from 0 to 65535, got " " (0 = no gRPC server)',
    ],
    ['MAX_BATCH_SIZE', '', 'MAX_BATCH_SIZE: expected an integer from 1 to 1000000, got ""'],
  ] as const) {
    it(`${variable}=${JSON.stringify(value)}`, () => {
      expect(() => parseServerConfig({ [variable]: value })).toThrow(
        `invalid configuration: ${message}`,
      );
    });
  }

  it('a misspelled variable is warned of, by name and without its value, before the start', () => {
    // A repository that does not exist ends the start right after the warnings.
    const result = serverCli([], {
      WORKER: '2',
      log_level: 'debug',
      ADMIN_TOKN: 'a-secret-value',
      MODEL_REPOSITORY: '/nonexistent/normserve-models',
    });
    expect(result.status).toBe(1);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines.slice(0, 3)).toEqual([
      'normserve: warning: the environment variable ADMIN_TOKN is not read (did you mean ADMIN_TOKEN?), so ADMIN_TOKEN keeps its default; README.md, section Configuration, lists every variable',
      'normserve: warning: the environment variable WORKER is not read (did you mean WORKERS?), so WORKERS keeps its own value; README.md, section Configuration, lists every variable',
      'normserve: warning: the environment variable log_level is not read (did you mean LOG_LEVEL?), so LOG_LEVEL keeps its default; README.md, section Configuration, lists every variable',
    ]);
    expect(result.stderr).not.toContain('a-secret-value');
    expect(lines[3]).toContain('/nonexistent/normserve-models');
  });

  it('an open files limit below what MAX_CONNECTIONS needs is warned of at the start, with the limit and the MAX_CONNECTIONS that fits', () => {
    const limit = openFilesLimit();
    if (limit === undefined) return; // no /proc/self/limits here: nothing to read, nothing said
    // serverCli runs without gRPC (GRPC_PORT=0): one port's connections.
    const tooMany = String(limit);
    const result = serverCli([], {
      MAX_CONNECTIONS: tooMany,
      MODEL_REPOSITORY: '/nonexistent/normserve-models',
    });
    expect(result.status).toBe(1);
    const warning = openFilesWarning({ MAX_CONNECTIONS: Number(tooMany), GRPC_PORT: 0 }, limit);
    expect(warning).toMatch(/^warning: this process may open \d+ files \(ulimit -n\)/);
    expect(result.stderr.split('\n')[0]).toBe(`normserve: ${warning}`);
    // The default fits a limit of 2 × 1024 + OTHER_DESCRIPTORS, not one less.
    const config = { MAX_CONNECTIONS: 1024, GRPC_PORT: 8081 };
    expect(openFilesWarning(config, 2048 + OTHER_DESCRIPTORS)).toBeUndefined();
    expect(openFilesWarning(config, 2047 + OTHER_DESCRIPTORS)).toMatch(
      /lower MAX_CONNECTIONS to 1023$/,
    );
    expect(openFilesWarning({ ...config, GRPC_PORT: 0 }, 1024 + OTHER_DESCRIPTORS)).toBeUndefined();
    // The attack review's machine: ulimit -n 1024 with the defaults.
    expect(openFilesWarning(config, 1024)).toBe(
      `warning: this process may open 1024 files (ulimit -n), fewer than the ${2048 + OTHER_DESCRIPTORS} that MAX_CONNECTIONS (1024) on each of its 2 ports and ${OTHER_DESCRIPTORS} more need: idle connections can take every descriptor and the server's own files then fail to open (EMFILE); raise the limit (ulimit -n, the container's nofile, systemd's LimitNOFILE) or lower MAX_CONNECTIONS to 448`,
    );
  });

  it('the open files limit is read from /proc/self/limits: its soft value; none when unlimited or absent', () => {
    const limits = (soft: string, hard: string) =>
      `Limit                     Soft Limit           Hard Limit           Units     \nMax processes             unlimited            unlimited            processes \nMax open files            ${soft.padEnd(21)}${hard.padEnd(21)}files     \n`;
    expect(openFilesLimit(limits('1024', '524288'))).toBe(1024);
    expect(openFilesLimit(limits('unlimited', 'unlimited'))).toBeUndefined();
    expect(openFilesLimit('')).toBeUndefined();
  });

  it('GRPC_PORT equal to PORT is refused with the configuration, naming GRPC_PORT', () => {
    expect(() => parseServerConfig({ PORT: '9000', GRPC_PORT: '9000' })).toThrow(
      'invalid configuration: GRPC_PORT: 9000 is PORT too; give gRPC a port of its own (0 = no gRPC server)',
    );
    // GRPC_PORT unset: its default is named as such.
    expect(() => parseServerConfig({ PORT: '8081' })).toThrow(
      "invalid configuration: GRPC_PORT: 8081 (GRPC_PORT's default) is PORT too; give gRPC a port of its own (0 = no gRPC server)",
    );
    // Both 0 (any free port each, or no gRPC) and two different ports are fine.
    expect(parseServerConfig({ PORT: '0', GRPC_PORT: '0' }).GRPC_PORT).toBe(0);
    expect(parseServerConfig({ PORT: '9000', GRPC_PORT: '9001' }).GRPC_PORT).toBe(9001);
  });

  it('AUTO_RECALIBRATE acting with a traffic sample smaller than AUTO_RECALIBRATE_MIN_ROWS is refused, naming TRAFFIC_SAMPLE_ROWS', () => {
    expect(() =>
      parseServerConfig({ AUTO_RECALIBRATE: 'promote', TRAFFIC_SAMPLE_ROWS: '256' }),
    ).toThrow(
      'invalid configuration: TRAFFIC_SAMPLE_ROWS: 256 is less than AUTO_RECALIBRATE_MIN_ROWS (512): with AUTO_RECALIBRATE=promote the traffic sample could never hold the rows to recalibrate from; raise it or lower AUTO_RECALIBRATE_MIN_ROWS',
    );
    expect(() =>
      parseServerConfig({ AUTO_RECALIBRATE: 'candidate', AUTO_RECALIBRATE_MIN_ROWS: '4096' }),
    ).toThrow(/TRAFFIC_SAMPLE_ROWS: 2048 \(TRAFFIC_SAMPLE_ROWS's default\) is less than/);
    // Equal is enough; recommend and off keep no sample to act on.
    expect(
      parseServerConfig({ AUTO_RECALIBRATE: 'promote', TRAFFIC_SAMPLE_ROWS: '512' })
        .TRAFFIC_SAMPLE_ROWS,
    ).toBe(512);
    expect(
      parseServerConfig({ AUTO_RECALIBRATE: 'recommend', TRAFFIC_SAMPLE_ROWS: '256' })
        .TRAFFIC_SAMPLE_ROWS,
    ).toBe(256);
  });

  it('a valid value still parses as before (spaces around a number, the default when unset)', () => {
    expect(parseServerConfig({ PORT: ' 9000 ' }).PORT).toBe(9000);
    expect(parseServerConfig({}).PORT).toBe(8080);
    expect(parseServerConfig({ DRIFT_SAMPLE_FRACTION: '0.25' }).DRIFT_SAMPLE_FRACTION).toBe(0.25);
    // An optional variable reads empty as unset: its own meaning (cores per worker), not 0.
    expect(parseServerConfig({ ENGINE_THREADS: '' }).ENGINE_THREADS).toBeUndefined();
    expect(parseServerConfig({ ENGINE_THREADS: '  ' }).ENGINE_THREADS).toBeUndefined();
  });
});

describe('npm run grpc', () => {
  it('--help prints the usage, the methods and examples and exits 0', () => {
    const result = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'tools/grpc-call.ts', '--help'],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(
      /^usage: npm run -s grpc -- \[-H 'name: value' …\] \[host:port\] <Method>/,
    );
    expect(result.stdout).toContain('Methods: ServerLive, ServerReady, ModelReady');
    expect(result.stdout).toContain('ModelMetadata \'{"name":"digits"}\'');
  });
});
