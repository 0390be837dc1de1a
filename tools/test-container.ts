/**
 * `npm run test:container`: builds the image with podman (or docker), runs it, and checks what a
 * deployment relies on: ready, predictions equal to the local ones, a non-root process, a healthy
 * HEALTHCHECK, recalibration with the admin token from the environment, two containers of one
 * host name sharing a repository (sharedHostName), exit 0 within 10 s of SIGTERM. Removes the container and image it made. Not part of `npm test` (needs a container
 * engine; on machines without a registry, run ../shared/tools/container-base-images.sh first).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModelDirectory } from '../src/service/index.js';

const started = Date.now();
const step = (name: string, detail: string) =>
  process.stdout.write(
    `ok   ${name.padEnd(14)} ${detail} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
  );
const fail = (name: string, detail: string): never => {
  process.stdout.write(`FAIL ${name.padEnd(14)} ${detail}\n`);
  throw new Error(`${name}: ${detail}`);
};

function engine(): 'podman' | 'docker' {
  for (const candidate of ['podman', 'docker'] as const) {
    if (spawnSync(candidate, ['--version'], { encoding: 'utf8' }).status === 0) {
      // docker's client answers without an engine; ask the engine itself.
      if (
        candidate === 'docker' &&
        spawnSync('docker', ['info'], { encoding: 'utf8' }).status !== 0
      )
        continue;
      return candidate;
    }
  }
  return fail('engine', 'neither podman nor docker (with a running engine) is installed');
}

const tool = engine();
const run = (args: string[], options: { allowFail?: boolean; timeoutMs?: number } = {}) => {
  const result = spawnSync(tool, args, { encoding: 'utf8', timeout: options.timeoutMs ?? 600_000 });
  if (result.status !== 0 && !options.allowFail) {
    fail(
      args[0]!,
      `${tool} ${args.join(' ')} exited ${result.status}: ${(result.stderr || result.stdout).trim().slice(-2000)}`,
    );
  }
  return result;
};

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

const suffix = randomBytes(4).toString('hex');
const image = `normserve-test:${suffix}`;
const container = `normserve-test-${suffix}`;
const adminToken = randomBytes(24).toString('base64url');

/** Starts the image as `name` with the admin token and `options`; the host port of its 8080. */
async function startServer(name: string, options: string[]): Promise<number> {
  const port = await freePort();
  run([
    'run',
    '-d',
    '--name',
    name,
    '-p',
    `127.0.0.1:${port}:8080`,
    '-e',
    `ADMIN_TOKEN=${adminToken}`,
    ...options,
    image,
  ]);
  return port;
}

/** Waits (60 s at most) for the server of `name` on `port` to answer /readyz 200. */
async function untilReady(name: string, port: number, stepName: string): Promise<void> {
  for (let i = 0; i < 120; i++) {
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  fail(
    stepName,
    `${name}: GET /readyz never answered 200; logs: ${run(['logs', name], { allowFail: true }).stderr.slice(-2000)}`,
  );
}

async function main(): Promise<void> {
  step('engine', `${tool} ${run(['--version']).stdout.trim()}`);
  // podman: --format docker keeps HEALTHCHECK; --layers=false keeps no image of the build stage,
  // which every run left behind, dangling (832 MB each), as `rmi` below removes only the tag.
  run([
    'build',
    ...(tool === 'podman' ? ['--format', 'docker', '--layers=false'] : []),
    '-t',
    image,
    '.',
  ]);
  const size = run(['image', 'inspect', image, '--format', '{{.Size}}']).stdout.trim();
  step('build', `${image}, ${(Number(size) / 1e6).toFixed(0)} MB`);

  const port = await startServer(container, ['-e', 'WORKERS=2']);
  const base = `http://127.0.0.1:${port}`;
  await untilReady(container, port, 'ready');
  step('ready', `${base}/readyz answered 200`);

  const rows = [
    [
      0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0,
      8, 8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6,
      13, 10, 0, 0, 0,
    ],
    Array.from({ length: 64 }, (_, i) => (i * 7) % 17),
  ];
  const response = await fetch(`${base}/v1/models/digits:predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ instances: rows }),
  });
  const remote = (await response.json()) as { predictions: number[][]; labels: string[] };
  const local = (await openModelDirectory('models/digits')).predict(rows);
  const expected = Array.from(local.probabilities!);
  const got = remote.predictions.flat();
  const maxDiff = Math.max(...expected.map((v, i) => Math.abs(v - got[i]!)));
  if (
    response.status !== 200 ||
    got.length !== expected.length ||
    maxDiff > 1e-6 ||
    remote.labels.join() !== local.labels!.join()
  ) {
    fail(
      'prediction',
      `status ${response.status}, labels ${remote.labels} vs ${local.labels}, max |Δ| ${maxDiff}`,
    );
  }
  step(
    'prediction',
    `labels ${remote.labels.join(',')} equal to the local server's, max |Δp| ${maxDiff}`,
  );

  const uid = run(['exec', container, 'id', '-u']).stdout.trim();
  if (uid === '0') fail('non-root', 'the server runs as root');
  step(
    'non-root',
    `uid ${uid}, image user ${run(['image', 'inspect', image, '--format', '{{.Config.User}}']).stdout.trim()}`,
  );

  if (tool === 'podman') {
    const health = run(['healthcheck', 'run', container], { allowFail: true });
    if (health.status !== 0)
      fail(
        'healthcheck',
        `podman healthcheck run exited ${health.status}: ${health.stdout}${health.stderr}`,
      );
    step('healthcheck', 'podman healthcheck run: healthy');
  } else {
    let status = '';
    for (let i = 0; i < 60 && status !== 'healthy'; i++) {
      status = run(['inspect', container, '--format', '{{.State.Health.Status}}']).stdout.trim();
      if (status !== 'healthy') await new Promise((r) => setTimeout(r, 1000));
    }
    if (status !== 'healthy') fail('healthcheck', `health status ${status}`);
    step('healthcheck', 'docker reports healthy');
  }

  const night = rows
    .concat(rows.map((r) => r.map((v) => 16 - v)))
    .map((r) => r.map((v) => 0.35 * v + 1.6));
  const unauthorized = await fetch(`${base}/v1/models/digits:recalibrate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ instances: night }),
  });
  const recalibration = await fetch(`${base}/v1/models/digits:recalibrate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ instances: night, note: 'container test' }),
  });
  const outcome = (await recalibration.json()) as { version?: number; samples?: number };
  if (unauthorized.status !== 401 || recalibration.status !== 201 || outcome.version !== 2) {
    fail(
      'recalibrate',
      `without token ${unauthorized.status}, with token ${recalibration.status}: ${JSON.stringify(outcome)}`,
    );
  }
  step(
    'recalibrate',
    `401 without the token; 201 with it: version ${outcome.version} from ${outcome.samples} samples`,
  );

  await sharedHostName();

  const stopStart = Date.now();
  run(['kill', '--signal', 'TERM', container]);
  const waited = run(['wait', container], { timeoutMs: 15_000 });
  const seconds = (Date.now() - stopStart) / 1000;
  const code = waited.stdout.trim().split('\n').at(-1);
  if (code !== '0' || seconds > 10)
    fail('sigterm', `exit code ${code} after ${seconds.toFixed(1)} s`);
  step('sigterm', `exit code 0 after ${seconds.toFixed(1)} s`);
}

/** The containers sharedHostName starts, removed with the others. */
const neighbours = [`${container}-a`, `${container}-b`];

/**
 * Two containers of one host name (as one Kubernetes pod's, or `--network host` ones), each with
 * its own pid namespace (each server is PID 1 there), sharing one model repository: a
 * recalibration through the second while the first's holds the model's lock is refused 409, and
 * the first's completes. Before locks named their pid namespace (2026-12-05) the second broke the
 * first's lock as an earlier PID 1's, ran over it (201), and the first's failed with a 503.
 */
async function sharedHostName(): Promise<void> {
  const repository = mkdtempSync(join(tmpdir(), 'normserve-shared-'));
  try {
    cpSync('models', repository, { recursive: true });
    // The image's user (1000) writes there, whatever the host's ids map to.
    spawnSync('chmod', ['-R', 'a+rwX', repository]);
    const ports: number[] = [];
    for (const name of neighbours) {
      ports.push(
        await startServer(name, [
          '--hostname',
          `normserve-pod-${suffix}`,
          '-e',
          'WORKERS=1',
          '-e',
          'MODEL_REPOSITORY=/repo',
          '-v',
          // z: both containers may write it where SELinux labels files (ignored elsewhere).
          `${repository}:/repo:z`,
        ]),
      );
    }
    for (const [i, port] of ports.entries()) await untilReady(neighbours[i]!, port, 'shared-host');
    const header = Array.from({ length: 64 }, (_, i) => `p${i}`).join(',');
    const csvRow = (k: number) => Array.from({ length: 64 }, (_, i) => (i * k) % 17).join(',');
    const body = `${header}\n${Array.from({ length: 40 }, (_, k) => csvRow(k + 1)).join('\n')}\n`;
    // The first's upload: its head and part of its rows, the rest once the second was answered.
    const socket = connect(ports[0]!, '127.0.0.1');
    let first = '';
    socket.setEncoding('utf8').on('data', (d: string) => {
      first += d;
    });
    socket.on('error', () => undefined);
    const firstClosed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write(
      `POST /v1/models/digits:recalibrate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n` +
        `Authorization: Bearer ${adminToken}\r\nContent-Type: text/csv\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 400)}`,
    );
    const lock = join(repository, 'digits', '.recalibration.lock');
    for (let i = 0; i < 600 && !existsSync(lock); i++) await new Promise((r) => setTimeout(r, 50));
    if (!existsSync(lock)) fail('shared-host', 'the first recalibration never took the lock');
    const second = await fetch(`http://127.0.0.1:${ports[1]}/v1/models/digits:recalibrate`, {
      method: 'POST',
      headers: { 'content-type': 'text/csv', authorization: `Bearer ${adminToken}` },
      body,
    });
    const secondBody = (await second.json()) as { code?: string };
    // Not end(): podman's port forwarding closes both ways on the client's half-close.
    socket.write(body.slice(400));
    const stalled = new Promise<'stalled'>((resolve) =>
      setTimeout(() => resolve('stalled'), 120_000).unref(),
    );
    if ((await Promise.race([firstClosed, stalled])) === 'stalled')
      fail(
        'shared-host',
        `the first recalibration did not end within 120 s: ${first.slice(0, 200)}`,
      );
    const firstStatus = /^HTTP\/1\.1 (\d+)/.exec(first)?.[1];
    if (
      second.status !== 409 ||
      secondBody.code !== 'RECALIBRATION_IN_PROGRESS' ||
      firstStatus !== '201'
    )
      fail(
        'shared-host',
        `the second's recalibration ${second.status} ${secondBody.code}, the first's ${firstStatus}`,
      );
    step(
      'shared-host',
      'one host name, two pid namespaces: the second recalibration 409 while the first holds the lock; the first 201',
    );
  } finally {
    for (const name of neighbours) run(['rm', '-f', name], { allowFail: true });
    // What the servers wrote belongs to the image's user, which a rootless engine maps to an id
    // the host's user cannot remove: removed from inside a container, then the directory.
    run(
      [
        'run',
        '--rm',
        '-v',
        `${repository}:/repo:z`,
        image,
        'node',
        '-e',
        "const fs = require('node:fs'); for (const f of fs.readdirSync('/repo')) fs.rmSync('/repo/' + f, { recursive: true, force: true });",
      ],
      { allowFail: true },
    );
    try {
      rmSync(repository, { recursive: true, force: true });
    } catch (e) {
      process.stdout.write(`note shared-host could not remove ${repository}: ${String(e)}\n`);
    }
  }
}

try {
  await main();
  process.stdout.write('container test passed\n');
} catch (e) {
  process.exitCode = 1;
  if (!(e instanceof Error && e.message.includes(':'))) process.stdout.write(`FAIL ${String(e)}\n`);
} finally {
  run(['rm', '-f', container], { allowFail: true });
  run(['rmi', '-f', image], { allowFail: true });
  step('cleanup', `removed ${container} and ${image}`);
}
