/**
 * The peers' packages live in bench/peers/ (its own package.json and package-lock.json), apart
 * from normserve's dependencies. They are installed on demand, the first time the benchmark needs
 * them or when the lock file pins other versions than node_modules holds, with
 * `npm ci --prefix bench/peers` and ONNXRUNTIME_NODE_INSTALL=skip: onnxruntime-node's postinstall
 * would otherwise try to download CUDA binaries; its npm tarball already holds the CPU runtime.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const PEERS_DIR = join('bench', 'peers');

/** Pinned name → version of bench/peers/package.json. */
export function peerVersions(): Record<string, string> {
  return (
    JSON.parse(readFileSync(join(PEERS_DIR, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    }
  ).dependencies;
}

function installedVersion(name: string): string | undefined {
  try {
    const manifest = readFileSync(join(PEERS_DIR, 'node_modules', name, 'package.json'), 'utf8');
    return (JSON.parse(manifest) as { version: string }).version;
  } catch {
    return undefined;
  }
}

/** Packages whose installed version differs from the pinned one (or that are missing). */
function stale(): string[] {
  return Object.entries(peerVersions())
    .filter(([name, version]) => installedVersion(name) !== version)
    .map(([name, version]) => `${name}@${version}`);
}

/**
 * Installs bench/peers when needed; returns undefined when the peers are ready, else why not (the
 * benchmark then runs without them). npm's output goes to stderr.
 */
export function ensurePeersInstalled(log: (line: string) => void): string | undefined {
  const missing = stale();
  if (missing.length === 0) return undefined;
  log(`installing the benchmark peers (${missing.join(', ')}): npm ci --prefix ${PEERS_DIR}`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, ['ci', '--prefix', PEERS_DIR, '--no-audit', '--no-fund'], {
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' },
    stdio: ['ignore', process.stderr, process.stderr],
    timeout: 15 * 60_000,
  });
  if (result.error) return `npm ci --prefix ${PEERS_DIR}: ${result.error.message}`;
  if (result.status !== 0) return `npm ci --prefix ${PEERS_DIR} exited ${result.status}`;
  const still = stale();
  return still.length === 0 ? undefined : `still missing after npm ci: ${still.join(', ')}`;
}
