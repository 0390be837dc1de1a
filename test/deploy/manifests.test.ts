/**
 * The deployment files under deploy/ against the server they deploy: every YAML file parses
 * cleanly, and what the orchestrators rely on (probe routes and ports, environment variables and
 * their values, the model repository mount, the user, the image, the Secret, the claim, the KServe
 * runtime) agrees with src/service/server-config.ts, the routes of the app and the Dockerfile.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { WORKER_KILL_MARGIN_MS } from '../../src/cli/cluster-primary.js';
import { parseServerConfig, serverConfigSchema } from '../../src/service/index.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { copyBundledRepository } from '../helpers/bundled-models.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

/** Stands in for values that come from a Secret (ADMIN_TOKEN needs at least 16 characters). */
const DUMMY_SECRET = 'x'.repeat(32);
const DEPLOY_DIR = 'deploy';

// ---------------------------------------------------------------------------------------------
// Shapes of the manifests, as far as these tests read them.

interface EnvVar {
  name: string;
  value?: unknown;
  valueFrom?: { secretKeyRef?: { name: string; key: string } } & Record<string, unknown>;
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  timeoutSeconds?: number;
  periodSeconds?: number;
  failureThreshold?: number;
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  securityContext?: SecurityContext;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  resources?: { requests?: Record<string, string> };
}
interface Volume {
  name: string;
  persistentVolumeClaim?: { claimName: string };
  emptyDir?: Record<string, unknown>;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  securityContext?: SecurityContext;
  terminationGracePeriodSeconds?: number;
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: unknown;
  stringData?: Record<string, string>;
  data?: Record<string, string>;
}
interface Deployment extends Manifest {
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: PodSpec;
    };
  };
}
interface Service extends Manifest {
  spec: {
    selector: Record<string, string>;
    ports: { name?: string; port: number; targetPort: string | number }[];
  };
}
interface Hpa extends Manifest {
  spec: {
    scaleTargetRef: { apiVersion: string; kind: string; name: string };
    metrics?: { type: string; resource?: { name: string } }[];
  };
}
interface Pvc extends Manifest {
  spec: { accessModes: string[] };
}
interface ServingRuntime extends Manifest {
  spec: {
    supportedModelFormats: { name: string; version?: string }[];
    protocolVersions: string[];
    containers: Container[];
    volumes?: Volume[];
  };
}
interface InferenceService extends Manifest {
  spec: {
    predictor: {
      model: {
        runtime: string;
        protocolVersion?: string;
        modelFormat: { name: string; version?: string };
        storageUri: string;
        ports?: { name?: string; containerPort: number }[];
      };
    };
  };
}
interface Job extends Manifest {
  spec: { template: { spec: PodSpec & { restartPolicy?: string } } };
}
interface ComposeService {
  image: string;
  env_file?: string | (string | { path: string })[];
  environment?: Record<string, unknown> | string[];
  volumes?: (string | { type?: string; source: string; target: string; read_only?: boolean })[];
  ports?: string[];
  healthcheck?: { test: string[] | string; interval?: string; timeout?: string; retries?: number };
  stop_grace_period?: string;
}
interface Compose {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// Reading deploy/ and the Dockerfile.

interface YamlFile {
  path: string;
  problems: string[];
  documents: unknown[];
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => {
      const path = join(dir, e.name);
      if (e.isDirectory()) return yamlFiles(path);
      return /\.ya?ml$/.test(e.name) ? [path] : [];
    })
    .sort();
}

/** Every YAML file, every document; errors and warnings are collected, not thrown. */
function readYaml(): YamlFile[] {
  return yamlFiles(DEPLOY_DIR).map((path) => {
    const problems: string[] = [];
    const documents: unknown[] = [];
    // Compose files use `<<:` merge keys (x-normserve anchors).
    for (const doc of parseAllDocuments(readFileSync(path, 'utf8'), { merge: true })) {
      for (const e of doc.errors) problems.push(`error: ${e.message}`);
      for (const w of doc.warnings) problems.push(`warning: ${w.message}`);
      try {
        const value: unknown = doc.toJS();
        if (value !== null && value !== undefined) documents.push(value);
      } catch (e) {
        problems.push(`toJS: ${String(e)}`);
      }
    }
    return { path, problems, documents };
  });
}

const files = readYaml();
const manifests: (Manifest & { file: string })[] = files.flatMap((f) =>
  f.documents
    .filter((d): d is Manifest => typeof d === 'object' && d !== null && 'kind' in d)
    .map((d) => ({ ...d, file: f.path })),
);

function only<T extends Manifest>(kind: string): T & { file: string } {
  const found = manifests.filter((m) => m.kind === kind);
  if (found.length !== 1)
    throw new Error(`expected exactly one ${kind} under deploy/, found ${found.length}`);
  return found[0] as T & { file: string };
}

function compose(): Compose {
  const f = files.find((x) => /(^|\/)(docker-)?compose\.ya?ml$/.test(x.path));
  if (!f) throw new Error('no compose.yaml under deploy/');
  return f.documents[0] as Compose;
}

/** The runtime (last) stage of the Dockerfile: ENV, USER, EXPOSE. */
function dockerfile(): {
  env: Record<string, string>;
  user: string;
  expose: number[];
  /** HEALTHCHECK's options without their dashes: interval, timeout, retries, … */
  healthcheck: Record<string, string>;
} {
  const text = readFileSync('Dockerfile', 'utf8')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const lines = text.split('\n').map((l) => l.trim());
  const lastFrom = lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true);
  const stage = lines.slice(lastFrom);
  const env: Record<string, string> = {};
  let user = '';
  const expose: number[] = [];
  const healthcheck: Record<string, string> = {};
  for (const line of stage) {
    const [, instruction, rest = ''] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    switch (instruction?.toUpperCase()) {
      case 'ENV':
        for (const pair of rest.split(/\s+/)) {
          const eq = pair.indexOf('=');
          if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1).replace(/^"(.*)"$/, '$1');
        }
        break;
      case 'USER':
        user = rest.trim();
        break;
      case 'EXPOSE':
        for (const p of rest.split(/\s+/)) expose.push(Number(p.split('/')[0]));
        break;
      case 'HEALTHCHECK':
        for (const [, name, value] of rest.matchAll(/--([a-z-]+)=(\S+)/g))
          healthcheck[name!] = value!;
        break;
    }
  }
  return { env, user, expose, healthcheck };
}

// ---------------------------------------------------------------------------------------------
// Helpers over the parsed manifests.

const schemaKeys = new Set(Object.keys(serverConfigSchema.shape));

/** A container's environment as the process sees it; Secret references become DUMMY_SECRET. */
function containerEnv(container: Container): Record<string, string> {
  const env: Record<string, string> = {};
  for (const v of container.env ?? []) {
    if (v.valueFrom?.secretKeyRef) env[v.name] = DUMMY_SECRET;
    else if (v.value !== undefined) env[v.name] = String(v.value);
    else throw new Error(`env ${v.name} of ${container.name} has neither value nor secretKeyRef`);
  }
  return env;
}

/** A container of the image as its process sees it: the Dockerfile's ENV, then the container's. */
function imageContainerEnv(container: Container): Record<string, string> {
  return { ...dockerfile().env, ...containerEnv(container) };
}

function composeEnv(service: ComposeService): Record<string, string> {
  const env: Record<string, string> = {};
  const e = service.environment ?? {};
  if (Array.isArray(e)) {
    for (const pair of e) {
      const eq = pair.indexOf('=');
      env[eq < 0 ? pair : pair.slice(0, eq)] = eq < 0 ? '' : pair.slice(eq + 1);
    }
  } else {
    for (const [k, v] of Object.entries(e)) env[k] = v === null ? '' : String(v);
  }
  return env;
}

/** KEY=value lines of an env file (comments and blank lines skipped). */
/** deploy/normserve.env.example as a user fills it in: the placeholder token replaced. */
function exampleEnvWithToken(): Record<string, string> {
  return { ...readEnvFile(join(DEPLOY_DIR, 'normserve.env.example')), ADMIN_TOKEN: 'x'.repeat(32) };
}

function readEnvFile(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const eq = t.indexOf('=');
    env[t.slice(0, eq)] = t.slice(eq + 1);
  }
  return env;
}

const imageName = (image: string) => image.replace(/@sha256:.*$/, '').replace(/:[^:/]+$/, '');

const mainContainer = (d: Deployment) => d.spec.template.spec.containers[0]!;

/** The container port a probe or Service targetPort refers to (by name or number). */
function resolvePort(container: Container, port: string | number): number | undefined {
  if (typeof port === 'number')
    return container.ports?.find((p) => p.containerPort === port)?.containerPort;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/** Kubernetes' terminationGracePeriodSeconds when a pod spec leaves it out (a KServe runtime's). */
const DEFAULT_GRACE_SECONDS = 30;

/**
 * The probes' bounds. A probe is a new connection, which a process busy with inference accepts
 * late: with 8 clients posting 1024-row digits-cnn batches /healthz took p99 up to 6.3 s
 * (WORKERS=2) and 15.2 s (WORKERS=1; bench/probes-under-load.ts, docs/probes-and-termination.md), so the default
 * timeoutSeconds (1) failed the probes of a busy pod. Every probe states a timeout of at least
 * 5 s, and liveness restarts only a process silent for a minute.
 */
const PROBE_TIMEOUT_MIN_SECONDS = 5;
const LIVENESS_WINDOW_MIN_SECONDS = 60;

function checkProbeBounds(c: Container): void {
  for (const [kind, probe] of [
    ['liveness', c.livenessProbe],
    ['readiness', c.readinessProbe],
    ['startup', c.startupProbe],
  ] as const) {
    if (!probe) continue;
    expect(probe.timeoutSeconds, `${kind} timeoutSeconds`).toBeGreaterThanOrEqual(
      PROBE_TIMEOUT_MIN_SECONDS,
    );
  }
  const live = c.livenessProbe!;
  // Kubernetes' defaults: periodSeconds 10, failureThreshold 3.
  expect((live.periodSeconds ?? 10) * (live.failureThreshold ?? 3)).toBeGreaterThanOrEqual(
    LIVENESS_WINDOW_MIN_SECONDS,
  );
}

/** A Docker or compose HEALTHCHECK's bounds, as the liveness probe's (checkProbeBounds). */
function checkHealthcheckBounds(
  what: string,
  h: { interval?: string; timeout?: string; retries?: number | string },
): void {
  // Docker's defaults: interval 30s, timeout 30s, retries 3.
  expect(durationMs(h.timeout ?? '30s'), `${what} timeout`).toBeGreaterThanOrEqual(
    PROBE_TIMEOUT_MIN_SECONDS * 1000,
  );
  expect(
    durationMs(h.interval ?? '30s') * Number(h.retries ?? 3),
    `${what} interval × retries`,
  ).toBeGreaterThanOrEqual(LIVENESS_WINDOW_MIN_SECONDS * 1000);
}

/** Compose durations: "15s", "1m30s", "500ms". */
function durationMs(text: string): number {
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total +=
      Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'];
  }
  return total;
}

/** The normserve services of the compose file (those running the normserve image). */
function normserveServices(): [string, ComposeService][] {
  const image = imageName(mainContainer(only<Deployment>('Deployment')).image);
  return Object.entries(compose().services).filter(([, s]) => imageName(s.image) === image);
}

let app: TestApp;
beforeAll(async () => {
  app = await makeTestApp();
});
afterAll(async () => {
  await app?.close();
  removeTempDirs();
});

/** A GET on the real app (the bundled digits model loaded): the status code. */
async function getStatus(path: string): Promise<number> {
  return (await app.app.inject({ method: 'GET', url: path })).statusCode;
}

// ---------------------------------------------------------------------------------------------

/** The image of every normserve container: Deployment, initContainer, compose, ServingRuntime, seed Job. */
function normserveImages(): string[] {
  const spec = only<Deployment>('Deployment').spec.template.spec;
  return [
    ...spec.containers.map((c) => c.image),
    ...(spec.initContainers ?? []).map((c) => c.image),
    ...normserveServices().map(([, s]) => s.image),
    ...only<ServingRuntime>('ServingRuntime').spec.containers.map((c) => c.image),
    ...only<Job>('Job').spec.template.spec.containers.map((c) => c.image),
  ];
}

describe('deploy/ YAML files', () => {
  it('every YAML file under deploy/ parses without errors or warnings', () => {
    expect(files.length).toBeGreaterThanOrEqual(8);
    const problems = files.flatMap((f) => f.problems.map((p) => `${f.path}: ${p}`));
    expect(problems).toEqual([]);
    for (const f of files) expect(f.documents.length, f.path).toBeGreaterThan(0);
  });

  it('holds one Deployment, Service, HPA, PVC, Secret, ServingRuntime, seed Job, two InferenceServices (REST, gRPC) and a compose file', () => {
    const kinds = [
      'Deployment',
      'HorizontalPodAutoscaler',
      'Job',
      'PersistentVolumeClaim',
      'Secret',
      'Service',
      'ServingRuntime',
    ];
    for (const kind of kinds)
      expect(
        manifests.filter((m) => m.kind === kind),
        kind,
      ).toHaveLength(1);
    expect(manifests.filter((m) => m.kind === 'InferenceService')).toHaveLength(2);
    expect(Object.keys(compose().services).length).toBeGreaterThan(0);
  });

  it('every Kubernetes manifest names its apiVersion, kind and metadata.name', () => {
    for (const m of manifests) {
      expect(m.apiVersion, m.file).toMatch(/^[a-z0-9.]*\/?v\d+(alpha\d+|beta\d+)?$/);
      expect(m.metadata?.name, m.file).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
  });
});

describe('Dockerfile', () => {
  it('runtime stage ENV names are serverConfigSchema keys and their values parse', () => {
    const { env } = dockerfile();
    expect(Object.keys(env).filter((k) => !schemaKeys.has(k))).toEqual([]);
    const config = parseServerConfig(env);
    expect(dockerfile().expose).toContain(config.PORT);
    expect(dockerfile().expose).toContain(config.GRPC_PORT);
    expect(config.GRPC_PORT).toBeGreaterThan(0);
  });

  it('HEALTHCHECK allows a busy process as the liveness probe does (a timeout of seconds, a minute)', () => {
    checkHealthcheckBounds('Dockerfile HEALTHCHECK', dockerfile().healthcheck);
  });

  it('the runtime stage copies proto/ (the gRPC server loads it at start-up)', () => {
    expect(readFileSync('Dockerfile', 'utf8')).toMatch(/^COPY proto \.\/proto$/m);
  });
});

describe('Kubernetes Deployment', () => {
  const deployment = () => only<Deployment>('Deployment');
  const container = () => mainContainer(deployment());

  it('liveness probe is GET /healthz, a liveness route of the server', async () => {
    const path = container().livenessProbe?.httpGet?.path;
    expect(path).toBe('/healthz');
    expect(await getStatus(path!)).toBe(200);
  });

  it('readiness probe is GET /readyz (200 once the models are loaded)', async () => {
    const path = container().readinessProbe?.httpGet?.path;
    expect(path).toBe('/readyz');
    expect(await getStatus(path!)).toBe(200);
  });

  it('startup probe, if any, is a route that answers 200 without waiting for readiness', async () => {
    const path = container().startupProbe?.httpGet?.path;
    if (path === undefined) return;
    expect(path).toBe('/healthz');
    expect(await getStatus(path)).toBe(200);
  });

  it('every probe targets the container port that equals PORT and the Dockerfile EXPOSE', () => {
    const c = container();
    const port = parseServerConfig(containerEnv(c)).PORT;
    expect(dockerfile().expose).toContain(port);
    expect(c.ports?.map((p) => p.containerPort)).toContain(port);
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
      if (!probe) continue;
      expect(probe.httpGet, 'an httpGet probe').toBeDefined();
      expect(resolvePort(c, probe.httpGet!.port)).toBe(port);
    }
  });

  it('exposes GRPC_PORT as the container port named grpc, and the Service routes it as h2c', () => {
    const c = container();
    const grpc = parseServerConfig(containerEnv(c)).GRPC_PORT;
    expect(grpc).toBeGreaterThan(0);
    expect(c.ports?.find((p) => p.name === 'grpc')?.containerPort).toBe(grpc);
    expect(dockerfile().expose).toContain(grpc);
    const service = only<Service>('Service');
    const port = service.spec.ports.find((p) => p.name === 'grpc') as
      | { targetPort: string | number; appProtocol?: string }
      | undefined;
    expect(port).toBeDefined();
    expect(resolvePort(c, port!.targetPort)).toBe(grpc);
    expect(port!.appProtocol).toBe('kubernetes.io/h2c');
  });

  it('every env name (containers and initContainers) is a serverConfigSchema key', () => {
    const spec = deployment().spec.template.spec;
    for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
      const unknown = (c.env ?? []).map((e) => e.name).filter((n) => !schemaKeys.has(n));
      expect(unknown, c.name).toEqual([]);
    }
  });

  it('every env value parses with parseServerConfig (Secret values as a 32-char dummy)', () => {
    const env = containerEnv(container());
    expect(() => parseServerConfig(env)).not.toThrow();
    const config = parseServerConfig(env);
    // Explicitly set values survive parsing unchanged (no silent default).
    expect(config.MODEL_REPOSITORY).toBe(env.MODEL_REPOSITORY);
    expect(String(config.PORT)).toBe(env.PORT);
  });

  it('the models volume is mounted, writable, exactly at MODEL_REPOSITORY', () => {
    const c = container();
    const repository = parseServerConfig(containerEnv(c)).MODEL_REPOSITORY;
    const claimVolumes = (deployment().spec.template.spec.volumes ?? []).filter(
      (v) => v.persistentVolumeClaim,
    );
    expect(claimVolumes).toHaveLength(1);
    const mounts = (c.volumeMounts ?? []).filter((m) => m.name === claimVolumes[0]!.name);
    expect(mounts).toHaveLength(1);
    expect(mounts[0]!.mountPath).toBe(repository);
    expect(mounts[0]!.readOnly ?? false).toBe(false);
  });

  it('runs as non-root with the Dockerfile USER uid and a read-only root filesystem', () => {
    const uid = Number(dockerfile().user.split(':')[0]);
    expect(Number.isInteger(uid) && uid > 0).toBe(true);
    const spec = deployment().spec.template.spec;
    for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
      const effective = { ...spec.securityContext, ...c.securityContext };
      expect(effective.runAsNonRoot, c.name).toBe(true);
      expect(effective.runAsUser, c.name).toBe(uid);
      expect(c.securityContext?.readOnlyRootFilesystem, c.name).toBe(true);
    }
  });

  it('sets SHUTDOWN_DELAY_MS (lame duck while the endpoints are removed), and terminationGracePeriodSeconds covers it, SHUTDOWN_TIMEOUT_MS and the primary’s margin', () => {
    const grace =
      deployment().spec.template.spec.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS;
    const { SHUTDOWN_DELAY_MS, SHUTDOWN_TIMEOUT_MS } = parseServerConfig(containerEnv(container()));
    expect(SHUTDOWN_DELAY_MS).toBeGreaterThan(0);
    expect(grace * 1000).toBeGreaterThan(
      SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS + WORKER_KILL_MARGIN_MS,
    );
  });

  it('every probe has a timeout a busy process can meet, and liveness tolerates a minute', () => {
    checkProbeBounds(container());
  });

  it('the image (without tag) is the same in the Deployment, initContainer, compose and ServingRuntime', () => {
    const spec = deployment().spec.template.spec;
    const images = normserveImages();
    expect(images.length).toBeGreaterThanOrEqual(5);
    expect(new Set(images.map(imageName))).toEqual(new Set([imageName(spec.containers[0]!.image)]));
    // Every compose service runs it (normserveServices() selects by this image name).
    expect(normserveServices()).toHaveLength(Object.keys(compose().services).length);
  });

  it('every image is normserve:<package.json version>, the tag the README builds', () => {
    const images = normserveImages();
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(new Set(images)).toEqual(new Set([`normserve:${version}`]));
    // A user who follows README's Deploy → Container builds the image the manifests run.
    const builds = [
      ...readFileSync('README.md', 'utf8').matchAll(/^docker build -t (\S+) \.(?:\s|$)/gm),
    ];
    expect(builds.map((m) => m[1])).toEqual([`normserve:${version}`]);
  });

  it('ADMIN_TOKEN comes from the Secret (its name and key exist in secret.yaml) in Deployment and ServingRuntime', () => {
    const secret = only<Manifest>('Secret');
    const containers = [container(), ...only<ServingRuntime>('ServingRuntime').spec.containers];
    for (const c of containers) {
      const ref = c.env?.find((e) => e.name === 'ADMIN_TOKEN');
      expect(ref?.value, `${c.name}: no plain-text ADMIN_TOKEN`).toBeUndefined();
      const keyRef = ref?.valueFrom?.secretKeyRef;
      expect(keyRef?.name, c.name).toBe(secret.metadata.name);
      const keys = Object.keys({ ...secret.data, ...secret.stringData });
      expect(keys, c.name).toContain(keyRef?.key);
    }
    // Applying secret.yaml unchanged must not start a server with a publicly known token.
    const placeholder = secret.stringData?.ADMIN_TOKEN;
    if (placeholder !== undefined)
      expect(() => parseServerConfig({ ADMIN_TOKEN: placeholder })).toThrow(
        /ADMIN_TOKEN: is still the placeholder/,
      );
  });

  it('the initContainer seeds the claim from the image’s bundled repository (the Dockerfile’s MODEL_REPOSITORY)', () => {
    const spec = deployment().spec.template.spec;
    const claim = spec.volumes?.find((v) => v.persistentVolumeClaim)?.name;
    const init = spec.initContainers ?? [];
    expect(init).toHaveLength(1);
    const mount = init[0]!.volumeMounts?.find((m) => m.name === claim);
    expect(mount, 'initContainer mounts the models claim').toBeDefined();
    const bundled = dockerfile().env.MODEL_REPOSITORY!;
    const script = init[0]!.command?.join(' ') ?? '';
    expect(script).toContain(`${bundled}/*/`);
    expect(script).toContain(mount!.mountPath);
    // Nothing is mounted over the bundled repository in the image.
    expect(init[0]!.volumeMounts?.map((m) => m.mountPath)).not.toContain(bundled);
  });

  /** Runs the initContainer's shell command with its paths moved into temp directories. */
  function runSeed(volume: string, bundled: string, hostname = 'pod-a'): void {
    execFileSync('sh', ['-c', seedScript(volume, bundled)], {
      env: { ...process.env, HOSTNAME: hostname },
    });
  }
  /** The initContainer's shell command, its paths moved to `volume` and `bundled`. */
  function seedScript(volume: string, bundled: string): string {
    const spec = deployment().spec.template.spec;
    const init = spec.initContainers![0]!;
    const claim = spec.volumes?.find((v) => v.persistentVolumeClaim)?.name;
    const mountPath = init.volumeMounts!.find((m) => m.name === claim)!.mountPath;
    const [shell, flag, script] = init.command!;
    expect([shell, flag]).toEqual(['sh', '-c']);
    return script!
      .replaceAll(mountPath, volume)
      .replaceAll(`${dockerfile().env.MODEL_REPOSITORY!}/`, `${bundled}/`);
  }
  /**
   * Runs the seed as a container that is killed (SIGKILL, the whole shell) during its `killAt`-th
   * cp: a `cp` first in PATH creates the destination directory, as a copy under way has, then
   * kills the shell running the script. Returns the shell's signal.
   */
  function runSeedKilled(volume: string, bundled: string, killAt: number): string | null {
    const bin = makeTempDir('seed-bin');
    const count = join(bin, 'count');
    writeFileSync(
      join(bin, 'cp'),
      [
        '#!/bin/sh',
        `n=$(( $(cat ${count} 2>/dev/null || echo 0) + 1 )); echo $n > ${count}`,
        `if [ $n -eq ${killAt} ]; then`,
        '  for a; do last=$a; done; mkdir -p "$last"; kill -9 $PPID; exit 137',
        'fi',
        `exec ${execFileSync('sh', ['-c', 'command -v cp'], { encoding: 'utf8' }).trim()} "$@"`,
      ].join('\n'),
    );
    chmodSync(join(bin, 'cp'), 0o755);
    const result = spawnSync('sh', ['-c', seedScript(volume, bundled)], {
      env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, HOSTNAME: 'pod-a' },
    });
    return result.signal;
  }
  function bundledCopy(): string {
    const dir = makeTempDir('bundled');
    copyBundledRepository(dir);
    return dir;
  }

  it('the initContainer seeds an empty claim and leaves a seeded one alone', () => {
    const bundled = bundledCopy();
    const volume = makeTempDir('claim');
    runSeed(volume, bundled);
    const models = readdirSync(bundled);
    expect(readdirSync(volume)).toEqual(models);
    expect(readdirSync(join(volume, 'digits'))).toEqual(['1']);
    // A claim holding recalibrated versions is not overwritten.
    mkdirSync(join(volume, 'digits', '2'));
    mkdirSync(join(bundled, 'other'));
    runSeed(volume, bundled);
    expect(readdirSync(volume)).toEqual(models);
    expect(readdirSync(join(volume, 'digits')).sort()).toEqual(['1', '2']);
  });

  it('a seed killed after its first model is completed by the next run, which overwrites no model', () => {
    const bundled = bundledCopy();
    const models = readdirSync(bundled).sort();
    expect(models.length, 'the image bundles several models').toBeGreaterThan(1);
    const volume = makeTempDir('claim');
    // Killed while copying the second model: the first is in place, the second half-copied.
    expect(runSeedKilled(volume, bundled, 2)).toBe('SIGKILL');
    const visible = () => readdirSync(volume).filter((n) => !n.startsWith('.'));
    expect(visible()).toHaveLength(1);
    const [first] = visible();
    expect(readdirSync(volume).filter((n) => n.startsWith('.tmp-seed-'))).toHaveLength(1);
    // A version added to the seeded model meanwhile (a recalibration) stays. The container is
    // restarted in its pod (the same host name, so its half-copied temporary is replaced).
    mkdirSync(join(volume, first!, '2'));
    runSeed(volume, bundled, 'pod-a');
    expect(visible().sort()).toEqual(models);
    expect(readdirSync(join(volume, first!)).sort()).toEqual(['1', '2']);
    for (const model of models.filter((m) => m !== first))
      expect(readdirSync(join(volume, model)).sort()).toEqual(readdirSync(join(bundled, model)));
    // Complete now: hidden leftovers gone, and the volume is left alone from here on.
    expect(readdirSync(volume).filter((n) => n.startsWith('.'))).toEqual([]);
    mkdirSync(join(bundled, 'other'));
    runSeed(volume, bundled);
    expect(visible().sort()).toEqual(models);
  });

  it('the initContainer seeds a fresh filesystem whose root holds only lost+found', () => {
    // ext4-backed shares (e.g. a Filestore/NFS export of a filesystem root) start with lost+found.
    const bundled = bundledCopy();
    const volume = makeTempDir('claim');
    mkdirSync(join(volume, 'lost+found'));
    runSeed(volume, bundled);
    expect(readdirSync(volume).sort()).toEqual([...readdirSync(bundled), 'lost+found'].sort());
  });

  it('Prometheus scrape annotations name the container port and the /metrics route', async () => {
    const annotations = deployment().spec.template.metadata.annotations ?? {};
    if (annotations['prometheus.io/scrape'] !== 'true') return;
    const port = parseServerConfig(containerEnv(container())).PORT;
    expect(Number(annotations['prometheus.io/port'])).toBe(port);
    const path = annotations['prometheus.io/path'] ?? '/metrics';
    expect(await getStatus(path)).toBe(200);
  });
});

describe('Kubernetes Service', () => {
  it('selects the Deployment’s pods and targets the container ports (PORT, GRPC_PORT) by name or number', () => {
    const service = only<Service>('Service');
    const deployment = only<Deployment>('Deployment');
    const labels = deployment.spec.template.metadata.labels;
    for (const [k, v] of Object.entries(service.spec.selector)) expect(labels[k], k).toBe(v);
    const c = mainContainer(deployment);
    const { PORT, GRPC_PORT } = parseServerConfig(containerEnv(c));
    expect(service.spec.ports.map((p) => resolvePort(c, p.targetPort)).sort()).toEqual(
      [PORT, GRPC_PORT].sort(),
    );
  });
});

describe('Kubernetes HorizontalPodAutoscaler', () => {
  it('scaleTargetRef names the Deployment (apps/v1)', () => {
    const ref = only<Hpa>('HorizontalPodAutoscaler').spec.scaleTargetRef;
    const deployment = only<Deployment>('Deployment');
    expect(ref).toEqual({
      apiVersion: deployment.apiVersion,
      kind: 'Deployment',
      name: deployment.metadata.name,
    });
  });

  it('a CPU utilisation target has a CPU request on the container to measure against', () => {
    const metrics = only<Hpa>('HorizontalPodAutoscaler').spec.metrics ?? [];
    if (!metrics.some((m) => m.resource?.name === 'cpu')) return;
    expect(mainContainer(only<Deployment>('Deployment')).resources?.requests?.cpu).toBeDefined();
  });
});

describe('Kubernetes PersistentVolumeClaim', () => {
  it('is ReadWriteMany and is the claim the Deployment mounts', () => {
    const pvc = only<Pvc>('PersistentVolumeClaim');
    expect(pvc.spec.accessModes).toContain('ReadWriteMany');
    const claims = (only<Deployment>('Deployment').spec.template.spec.volumes ?? []).flatMap((v) =>
      v.persistentVolumeClaim ? [v.persistentVolumeClaim.claimName] : [],
    );
    expect(claims).toEqual([pvc.metadata.name]);
  });

  it('every InferenceService storageUri names it (pvc://<claim>/...)', () => {
    const pvc = only<Pvc>('PersistentVolumeClaim');
    for (const m of manifests.filter(
      (m) => m.kind === 'InferenceService',
    ) as unknown as InferenceService[]) {
      const uri = m.spec.predictor.model.storageUri;
      expect(/^pvc:\/\/([^/]+)(\/.*)?$/.exec(uri)?.[1], m.metadata.name).toBe(pvc.metadata.name);
    }
  });
});

describe('compose', () => {
  it('runs two normserve services sharing one named volume mounted at their MODEL_REPOSITORY', () => {
    const services = normserveServices();
    expect(services).toHaveLength(2);
    const sources = new Set<string>();
    for (const [name, s] of services) {
      const repository = parseServerConfig(composeEnv(s)).MODEL_REPOSITORY;
      const mounts = (s.volumes ?? []).map((v) => {
        if (typeof v !== 'string') return { source: v.source, target: v.target, ro: !!v.read_only };
        const [source, target, mode] = v.split(':');
        return { source: source!, target: target!, ro: mode?.split(',').includes('ro') ?? false };
      });
      const atRepository = mounts.filter((m) => m.target === repository);
      expect(atRepository, name).toHaveLength(1);
      expect(atRepository[0]!.ro, `${name}: writable`).toBe(false);
      sources.add(atRepository[0]!.source);
    }
    expect(sources.size).toBe(1);
    const [volume] = [...sources];
    expect(Object.keys(compose().volumes ?? {}), 'a top-level named volume').toContain(volume);
  });

  it('env names are serverConfigSchema keys and the values (with the env_file example) parse', () => {
    const example = exampleEnvWithToken();
    for (const [name, s] of normserveServices()) {
      const env = composeEnv(s);
      const unknown = Object.keys({ ...example, ...env }).filter((k) => !schemaKeys.has(k));
      expect(unknown, name).toEqual([]);
      const config = parseServerConfig({ ...example, ...env });
      expect(config.MODEL_REPOSITORY, name).toBe(env.MODEL_REPOSITORY);
    }
  });

  it('env_file is set, and deploy/normserve.env.example exists and defines ADMIN_TOKEN', () => {
    for (const [name, s] of normserveServices()) {
      const envFiles = [s.env_file ?? []].flat().map((f) => (typeof f === 'string' ? f : f.path));
      expect(envFiles, name).toEqual(['normserve.env']);
    }
    const examplePath = join(DEPLOY_DIR, 'normserve.env.example');
    expect(existsSync(examplePath)).toBe(true);
    const example = readEnvFile(examplePath);
    expect(example.ADMIN_TOKEN).toBeDefined();
    // The example's placeholder is refused: a copy left unchanged must not start with a known token.
    expect(() => parseServerConfig({ ADMIN_TOKEN: example.ADMIN_TOKEN })).toThrow(
      /ADMIN_TOKEN: is still the placeholder/,
    );
  });

  it.skipIf(!existsSync('.git'))(
    'the real env file (deploy/normserve.env, holding the token) is git-ignored',
    () => {
      let ignored = true;
      try {
        execFileSync('git', ['check-ignore', '-q', join(DEPLOY_DIR, 'normserve.env')]);
      } catch {
        ignored = false; // exit 1: not ignored
      }
      expect(ignored, 'add deploy/normserve.env to .gitignore').toBe(true);
    },
  );

  it('healthcheck GETs /healthz on the service’s PORT', async () => {
    for (const [name, s] of normserveServices()) {
      const test = [s.healthcheck?.test ?? []].flat().join(' ');
      const port = parseServerConfig(composeEnv(s)).PORT;
      const url = /https?:\/\/(?:127\.0\.0\.1|localhost):(\d+)(\/[^'"\s)]*)/.exec(test);
      expect(url, name).not.toBeNull();
      expect(Number(url![1]), name).toBe(port);
      expect(url![2], name).toBe('/healthz');
    }
    expect(await getStatus('/healthz')).toBe(200);
  });

  it('healthcheck allows a busy process as the liveness probe does (a timeout of seconds, a minute)', () => {
    for (const [name, s] of normserveServices()) checkHealthcheckBounds(name, s.healthcheck ?? {});
  });

  it('publishes distinct host ports that map to the container PORT and GRPC_PORT', () => {
    const hostPorts: string[] = [];
    for (const [name, s] of normserveServices()) {
      const { PORT, GRPC_PORT } = parseServerConfig({ ...exampleEnvWithToken(), ...composeEnv(s) });
      expect(s.ports?.length, name).toBeGreaterThan(0);
      const targets = (s.ports ?? []).map((p) => {
        const parts = p.split(':');
        hostPorts.push(parts.slice(0, -1).join(':'));
        return Number(parts.at(-1)!.split('/')[0]);
      });
      expect(targets.sort(), name).toEqual([PORT, GRPC_PORT].sort());
    }
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
  });

  it('publishes no host port that npm start binds by default (PORT, GRPC_PORT)', () => {
    const defaults = parseServerConfig({});
    for (const [name, s] of normserveServices()) {
      const hostPorts = (s.ports ?? []).map((p) => Number(p.split(':').at(-2)));
      expect(hostPorts, name).not.toContain(defaults.PORT);
      expect(hostPorts, name).not.toContain(defaults.GRPC_PORT);
    }
  });

  it('stop_grace_period exceeds SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS and the primary’s margin', () => {
    const example = exampleEnvWithToken();
    for (const [name, s] of normserveServices()) {
      const { SHUTDOWN_DELAY_MS, SHUTDOWN_TIMEOUT_MS } = parseServerConfig({
        ...example,
        ...composeEnv(s),
      });
      // Compose's default is 10 s.
      expect(durationMs(s.stop_grace_period ?? '10s'), name).toBeGreaterThan(
        SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS + WORKER_KILL_MARGIN_MS,
      );
    }
  });
});

describe('KServe', () => {
  const runtime = () => only<ServingRuntime>('ServingRuntime');
  const deploymentSpec = () => only<Deployment>('Deployment').spec.template.spec;
  const runtimeContainer = () => {
    const containers = runtime().spec.containers;
    expect(containers).toHaveLength(1);
    return containers[0]!;
  };

  it('ServingRuntime supports protocolVersions v2 and grpc-v2', () => {
    expect(runtime().spec.protocolVersions).toContain('v2');
    expect(runtime().spec.protocolVersions).toContain('grpc-v2');
  });

  it('the gRPC InferenceService selects grpc-v2 on an h2c port equal to the runtime’s GRPC_PORT', () => {
    const grpc = (
      manifests.filter((m) => m.kind === 'InferenceService') as unknown as InferenceService[]
    ).filter((m) => m.spec.predictor.model.protocolVersion === 'grpc-v2');
    expect(grpc).toHaveLength(1);
    const model = grpc[0]!.spec.predictor.model as {
      ports?: { name: string; containerPort: number }[];
    };
    const { GRPC_PORT } = parseServerConfig(imageContainerEnv(runtimeContainer()));
    expect(model.ports).toEqual([
      expect.objectContaining({ name: 'h2c', containerPort: GRPC_PORT }),
    ]);
  });

  it('ServingRuntime probes use /v2/health/live and /v2/health/ready on the container port', async () => {
    const c = runtimeContainer();
    const port = parseServerConfig(imageContainerEnv(c)).PORT;
    expect(c.ports?.map((p) => p.containerPort)).toEqual([port]);
    expect(c.livenessProbe?.httpGet?.path).toBe('/v2/health/live');
    expect(c.readinessProbe?.httpGet?.path).toBe('/v2/health/ready');
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
      if (!probe) continue;
      expect(resolvePort(c, probe.httpGet!.port)).toBe(port);
      expect(await getStatus(probe.httpGet!.path)).toBe(200);
    }
  });

  it('ServingRuntime sets SHUTDOWN_DELAY_MS, within the pod’s default grace period with SHUTDOWN_TIMEOUT_MS', () => {
    const { SHUTDOWN_DELAY_MS, SHUTDOWN_TIMEOUT_MS, WORKERS } = parseServerConfig(
      imageContainerEnv(runtimeContainer()),
    );
    expect(SHUTDOWN_DELAY_MS).toBeGreaterThan(0);
    const margin = WORKERS > 1 ? WORKER_KILL_MARGIN_MS : 0;
    expect(DEFAULT_GRACE_SECONDS * 1000).toBeGreaterThan(
      SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS + margin,
    );
  });

  it('ServingRuntime probes have a timeout a busy process can meet, and liveness tolerates a minute', () => {
    checkProbeBounds(runtimeContainer());
  });

  /** Knative's reserved names (knative/serving pkg/apis/serving/k8s_validation.go, reservedEnvVars). */
  const KNATIVE_RESERVED_ENV = ['PORT', 'K_SERVICE', 'K_CONFIGURATION', 'K_REVISION'];

  it('ServingRuntime sets none of the environment variables Knative reserves (it refuses such a container)', () => {
    const names = (runtimeContainer().env ?? []).map((e) => e.name);
    expect(names.filter((n) => KNATIVE_RESERVED_ENV.includes(n))).toEqual([]);
  });

  /**
   * The predictor container's ports as KServe builds them: a strategic merge of the
   * InferenceService's container into the runtime's (kserve pkg/utils/container_merge.go), which
   * merges ports by containerPort, the InferenceService's first.
   */
  const mergedPorts = (isvc: InferenceService) => {
    const own = isvc.spec.predictor.model.ports ?? [];
    const runtimePorts = runtimeContainer().ports ?? [];
    return [
      ...own,
      ...runtimePorts.filter((p) => !own.some((o) => o.containerPort === p.containerPort)),
    ];
  };
  /** KServe's raw mode, by its old name and the one of KServe >= 0.16. */
  const isRaw = (isvc: InferenceService) =>
    ['RawDeployment', 'Standard'].includes(
      isvc.metadata.annotations?.['serving.kserve.io/deploymentMode'] ?? '',
    );
  const inferenceServices = () =>
    manifests.filter((m) => m.kind === 'InferenceService') as unknown as InferenceService[];

  it('an InferenceService Knative runs has one port, named as Knative allows, and serves HTTP on it as PORT', () => {
    const knative = inferenceServices().filter((s) => !isRaw(s));
    expect(knative.length).toBeGreaterThan(0);
    for (const isvc of knative) {
      const name = isvc.metadata.name;
      // Knative refuses a container with more than one port (validateContainersPorts) and sets
      // PORT to the one it has.
      const ports = mergedPorts(isvc);
      expect(ports, name).toHaveLength(1);
      expect(['', 'h2c', 'http1'], name).toContain(ports[0]!.name ?? '');
      const port = ports[0]!.containerPort;
      const config = parseServerConfig({
        ...imageContainerEnv(runtimeContainer()),
        PORT: String(port),
      });
      expect(config.PORT, name).toBe(port);
      expect(isvc.spec.predictor.model.protocolVersion ?? 'v1', name).not.toBe('grpc-v2');
    }
  });

  it('a raw InferenceService’s ports make a valid Service: all named and distinct, h2c first for gRPC', () => {
    const raw = inferenceServices().filter(isRaw);
    expect(raw.length).toBeGreaterThan(0);
    const { PORT, GRPC_PORT } = parseServerConfig(imageContainerEnv(runtimeContainer()));
    for (const isvc of raw) {
      const name = isvc.metadata.name;
      const ports = mergedPorts(isvc);
      // Kubernetes refuses a Service of several ports with one unnamed (spec.ports[i].name).
      if (ports.length > 1) {
        expect(
          ports.every((p) => (p.name ?? '') !== ''),
          name,
        ).toBe(true);
        expect(new Set(ports.map((p) => p.name)).size, name).toBe(ports.length);
      }
      // KServe routes the Service's first port (80) to the first container port.
      if (isvc.spec.predictor.model.protocolVersion === 'grpc-v2')
        expect(ports[0], name).toMatchObject({ name: 'h2c', containerPort: GRPC_PORT });
      // The probes' port is still the container's.
      expect(
        ports.map((p) => p.containerPort),
        name,
      ).toContain(PORT);
    }
  });

  it('the seed Job runs the Deployment’s seed command on the claim the InferenceServices read', () => {
    const job = only<Job>('Job').spec.template.spec;
    const init = only<Deployment>('Deployment').spec.template.spec.initContainers![0]!;
    const seed = job.containers[0]!;
    expect(seed.command).toEqual(init.command);
    const claim = job.volumes?.find((v) => v.persistentVolumeClaim)?.persistentVolumeClaim
      ?.claimName;
    const initVolume = init.volumeMounts![0]!;
    expect(seed.volumeMounts?.find((m) => m.mountPath === initVolume.mountPath)?.name).toBe(
      job.volumes?.find((v) => v.persistentVolumeClaim)?.name,
    );
    for (const isvc of manifests.filter(
      (m) => m.kind === 'InferenceService',
    ) as unknown as InferenceService[])
      expect(isvc.spec.predictor.model.storageUri).toMatch(new RegExp(`^pvc://${claim}/`));
    expect(job.securityContext?.runAsUser).toBe(Number(dockerfile().user.split(':')[0]));
    // What Kubernetes takes for a Job, and the Deployment's seed container's confinement.
    expect(['OnFailure', 'Never']).toContain(job.restartPolicy);
    expect(seed.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
    });
  });

  it('ServingRuntime env names are serverConfigSchema keys and the values parse', () => {
    const c = runtimeContainer();
    expect((c.env ?? []).map((e) => e.name).filter((n) => !schemaKeys.has(n))).toEqual([]);
    expect(() => parseServerConfig(imageContainerEnv(c))).not.toThrow();
  });

  it('ServingRuntime MODEL_REPOSITORY is KServe’s model mount /mnt/models', () => {
    expect(parseServerConfig(imageContainerEnv(runtimeContainer())).MODEL_REPOSITORY).toBe(
      '/mnt/models',
    );
  });

  it('a container with a read-only root filesystem has a writable /tmp (an emptyDir), where recalibration rows spill (h258)', () => {
    const pods: [string, Container[], Volume[] | undefined][] = [
      ['Deployment', deploymentSpec().containers, deploymentSpec().volumes],
      ['ServingRuntime', runtime().spec.containers, runtime().spec.volumes],
    ];
    for (const [kind, containers, volumes] of pods) {
      for (const c of containers.filter((c) => c.securityContext?.readOnlyRootFilesystem)) {
        const tmp = (c.volumeMounts ?? []).find((m) => m.mountPath === '/tmp');
        expect(tmp, `${kind} ${c.name}: /tmp mounted`).toBeDefined();
        expect(tmp!.readOnly ?? false).toBe(false);
        expect(volumes?.find((v) => v.name === tmp!.name)?.emptyDir, kind).toBeDefined();
      }
    }
  });

  it('ServingRuntime runs as the Dockerfile’s non-root uid with a read-only root filesystem', () => {
    const uid = Number(dockerfile().user.split(':')[0]);
    const sc = runtimeContainer().securityContext;
    expect(sc?.runAsNonRoot).toBe(true);
    expect(sc?.runAsUser).toBe(uid);
    expect(sc?.readOnlyRootFilesystem).toBe(true);
  });

  it('each InferenceService’s runtime, modelFormat and protocolVersion match the ServingRuntime', () => {
    const services = manifests.filter((m) => m.kind === 'InferenceService');
    for (const isvc of services as unknown as InferenceService[]) checkInferenceService(isvc);
  });

  const checkInferenceService = (isvc: InferenceService) => {
    const model = isvc.spec.predictor.model;
    const rt = runtime();
    expect(model.runtime).toBe(rt.metadata.name);
    const format = rt.spec.supportedModelFormats.find((f) => f.name === model.modelFormat.name);
    expect(format, `modelFormat ${model.modelFormat.name} is supported`).toBeDefined();
    if (model.modelFormat.version !== undefined)
      expect(format!.version).toBe(model.modelFormat.version);
    expect(rt.spec.protocolVersions).toContain(model.protocolVersion ?? 'v1');
  };
});
