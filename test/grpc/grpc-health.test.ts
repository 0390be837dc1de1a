/**
 * grpc.health.v1.Health (proto/health.proto), with a real @grpc/grpc-js client: Check and Watch
 * follow the readiness HTTP's /readyz answers — "" and inference.GRPCInferenceService for the
 * server, a model's name for that model, NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch) for any
 * other name — and turn NOT_SERVING when the server shuts down, the watches ended.
 */
import { cpSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type Client,
  type ClientReadableStream,
  credentials,
  loadPackageDefinition,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterEach, describe, expect, it } from 'vitest';
import { HEALTH_PROTO_FILE, PROTO_OPTIONS } from '../../src/grpc/proto.js';
import { waitFor } from '../helpers/admin.js';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { startGrpc } from '../helpers/grpc.js';

type Status = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN' | 'UNKNOWN';
interface HealthClient extends Client {
  Check(
    request: { service: string },
    metadata: Metadata,
    callback: (error: ServiceError | null, reply?: { status: Status }) => void,
  ): void;
  Watch(request: { service: string }): ClientReadableStream<{ status: Status }>;
}

function healthClient(port: number): HealthClient {
  const definition = loadPackageDefinition(
    loadSync(HEALTH_PROTO_FILE, PROTO_OPTIONS),
  ) as unknown as {
    grpc: {
      health: {
        v1: { Health: new (address: string, creds: unknown) => HealthClient };
      };
    };
  };
  return new definition.grpc.health.v1.Health(`127.0.0.1:${port}`, credentials.createInsecure());
}

const check = (client: HealthClient, service: string) =>
  new Promise<{ status?: Status; code: number }>((resolve) =>
    client.Check({ service }, new Metadata(), (error, reply) =>
      resolve(error ? { code: error.code } : { code: status.OK, status: reply!.status }),
    ),
  );

/** A Watch's messages so far, and how it ended (its status code) once it has. */
function watch(client: HealthClient, service: string) {
  const seen: Status[] = [];
  const outcome: { code?: number } = {};
  const stream = client.Watch({ service });
  stream.on('data', (m: { status: Status }) => seen.push(m.status));
  stream.on('error', (e: ServiceError) => {
    outcome.code = e.code;
  });
  stream.on('status', (s: { code: number }) => {
    outcome.code ??= s.code;
  });
  return { seen, outcome, cancel: () => stream.cancel() };
}

/** A copy of the bundled digits as `name`, its weights cut in half: a version that fails. */
function addBrokenModel(root: string, name: string): void {
  const dir = join(root, name, '1');
  cpSync(bundledVersionDir('digits'), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { name: string };
  config.name = name;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const weights = readFileSync(join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'model.safetensors'), weights.subarray(0, weights.length >> 1));
}

/** Polls until `ok` holds (generous bound: a busy machine). */
const until = (ok: () => boolean, what: string) =>
  waitFor(() => (ok() ? true : undefined), what, 30_000);
let t: TestApp | undefined;
let g: Awaited<ReturnType<typeof startGrpc>> | undefined;
let client: HealthClient | undefined;

async function start(repository: string) {
  t = await makeTestApp({ repository });
  const records: { method: string; code: string; model: string }[] = [];
  g = await startGrpc(t, {
    observer: {
      observeGrpc: (method, code, model) => records.push({ method, code, model }),
      observeInference: () => {},
    },
  });
  client = healthClient(g.port);
  return { t, g, client, records };
}

afterEach(async () => {
  client?.close();
  await g?.stop();
  await t?.close();
  client = undefined;
  g = undefined;
  t = undefined;
});

describe('grpc.health.v1.Health', () => {
  it('Check answers SERVING for the server and a ready model, NOT_FOUND for an unknown name, counted', async () => {
    const { t, client, records } = await start(makeRepository(['digits']));
    expect((await t.app.inject({ url: '/readyz' })).statusCode).toBe(200);
    expect(await check(client, '')).toEqual({ code: status.OK, status: 'SERVING' });
    expect(await check(client, 'inference.GRPCInferenceService')).toEqual({
      code: status.OK,
      status: 'SERVING',
    });
    expect(await check(client, 'digits')).toEqual({ code: status.OK, status: 'SERVING' });
    expect(await check(client, 'no-such-model')).toEqual({ code: status.NOT_FOUND });
    await until(() => records.length === 4, 'records.length === 4');
    expect(records).toEqual([
      { method: 'Check', code: 'OK', model: '' },
      { method: 'Check', code: 'OK', model: '' },
      { method: 'Check', code: 'OK', model: 'digits' },
      { method: 'Check', code: 'NOT_FOUND', model: '' },
    ]);
  });

  it('Check answers NOT_SERVING when /readyz is 503 (a model without an available version)', async () => {
    const root = makeRepository(['digits']);
    addBrokenModel(root, 'broken');
    const { t, client } = await start(root);
    expect((await t.app.inject({ url: '/readyz' })).statusCode).toBe(503);
    expect(await check(client, '')).toEqual({ code: status.OK, status: 'NOT_SERVING' });
    expect(await check(client, 'broken')).toEqual({ code: status.OK, status: 'NOT_SERVING' });
    expect(await check(client, 'digits')).toEqual({ code: status.OK, status: 'SERVING' });
  });

  it('Watch sends the status, then each change; an unknown name is SERVICE_UNKNOWN and stays watched', async () => {
    const root = makeRepository(['digits']);
    const { t, client } = await start(root);
    const server = watch(client, '');
    const model = watch(client, 'digits');
    const unknown = watch(client, 'later');
    await until(
      () => server.seen.length === 1 && model.seen.length === 1 && unknown.seen.length === 1,
      'the first message of each watch',
    );
    expect([server.seen, model.seen, unknown.seen]).toEqual([
      ['SERVING'],
      ['SERVING'],
      ['SERVICE_UNKNOWN'],
    ]);
    // A failing model named `later` appears: NOT_SERVING itself, but the server stays ready (it
    // was not there at the start and never served: README, STRICT_READINESS).
    addBrokenModel(root, 'later');
    await t.registry.refresh();
    expect((await t.app.inject({ url: '/readyz' })).statusCode).toBe(200);
    await until(() => unknown.seen.length === 2, 'NOT_SERVING on the watch of `later`');
    expect(unknown.seen).toEqual(['SERVICE_UNKNOWN', 'NOT_SERVING']);
    // A model of the start loses its only version: the server is no longer ready.
    renameSync(join(root, 'digits', '1'), join(root, 'digits', '.away-1'));
    await t.registry.refresh();
    expect((await t.app.inject({ url: '/readyz' })).statusCode).toBe(503);
    await until(
      () => server.seen.length === 2 && model.seen.length === 2,
      'NOT_SERVING on the watches of the server and of digits',
    );
    expect(server.seen).toEqual(['SERVING', 'NOT_SERVING']);
    expect(model.seen).toEqual(['SERVING', 'NOT_SERVING']);
    // It comes back: ready again.
    renameSync(join(root, 'digits', '.away-1'), join(root, 'digits', '1'));
    await t.registry.refresh();
    await until(
      () => server.seen.length === 3 && model.seen.length === 3,
      'SERVING again on the watches of the server and of digits',
    );
    expect(server.seen).toEqual(['SERVING', 'NOT_SERVING', 'SERVING']);
    expect(model.seen).toEqual(['SERVING', 'NOT_SERVING', 'SERVING']);
    expect(unknown.seen).toEqual(['SERVICE_UNKNOWN', 'NOT_SERVING']);
    expect([server.outcome.code, model.outcome.code, unknown.outcome.code]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    model.cancel();
    await until(() => model.outcome.code !== undefined, 'model.outcome.code !== undefined');
    expect(model.outcome.code).toBe(status.CANCELLED);
  });

  it('from a shutdown signal on (the lame duck of SHUTDOWN_DELAY_MS), NOT_SERVING as /readyz, a Watch told at once; ServerReady false', async () => {
    const { t, client, g } = await start(makeRepository(['digits']));
    const server = watch(client, '');
    await until(() => server.seen.length === 1, 'server.seen.length === 1');
    t.app.deps.phase.enter('lame-duck');
    expect((await t.app.inject({ url: '/readyz' })).statusCode).toBe(503);
    expect(await check(client, '')).toEqual({ code: status.OK, status: 'NOT_SERVING' });
    expect(await check(client, 'digits')).toEqual({ code: status.OK, status: 'NOT_SERVING' });
    await until(() => server.seen.length === 2, 'NOT_SERVING on the watch');
    expect(server.seen).toEqual(['SERVING', 'NOT_SERVING']);
    expect(await g.client.call('ServerReady', {})).toEqual({ ok: true, value: { ready: false } });
    server.cancel();
  });

  it('shutting down, a Watch is told NOT_SERVING and ended with OK, and the close does not wait for it', async () => {
    const { client, g: server0 } = await start(makeRepository(['digits']));
    g = undefined; // closed here, not by afterEach
    const server = watch(client, '');
    await until(() => server.seen.length === 1, 'server.seen.length === 1');
    // Its grace longer than the test's timeout: a close that waited for the watch times it out.
    await server0.close(120_000);
    client.close();
    await until(() => server.outcome.code !== undefined, 'server.outcome.code !== undefined');
    expect(server.seen).toEqual(['SERVING', 'NOT_SERVING']);
    expect(server.outcome.code).toBe(status.OK);
  });
});
