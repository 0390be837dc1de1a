import Fastify from 'fastify';
import pino from 'pino';
import { buildApp } from './src/http/app.js';
import { ServiceMetrics } from './src/http/metrics.js';
import { predictRequestSchema, predictRequestSchemaFor } from './src/http/schemas/tf-serving.js';
import { parseWith, serializerCompiler, validatorCompiler } from './src/http/validation.js';
import { compileAccepts, ModelRegistry, parseServerConfig } from './src/service/index.js';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const repo = mkdtempSync(join(tmpdir(), 'inj-')); cpSync('models/digits', join(repo, 'digits'), { recursive: true });
async function normserve(level: string) {
  const config = parseServerConfig({ MODEL_REPOSITORY: repo, ADMIN_TOKEN: 'x'.repeat(20), LOG_LEVEL: level });
  const registry = new ModelRegistry(repo, { maxBatchSize: 4096 }); await registry.refresh();
  const app = await buildApp({ config, registry, metrics: new ServiceMetrics(), adminToken: 'x'.repeat(20), version: '0', logger: pino({ level }, pino.destination('/dev/null')) });
  await app.ready(); return app;
}
async function bare() {
  const app = Fastify({ bodyLimit: 16 << 20, onProtoPoisoning: 'error', onConstructorPoisoning: 'error' });
  app.setValidatorCompiler(validatorCompiler); app.setSerializerCompiler(serializerCompiler);
  const accepts = compileAccepts(predictRequestSchemaFor(64, 4096))!;
  app.post('/v1/models/:name(^[A-Za-z0-9][A-Za-z0-9._-]*)::predict', async (request) => {
    const body = (accepts(request.body) ? request.body : parseWith(predictRequestSchema, request.body, 'body')) as { instances?: unknown[] };
    return { model_version: 0, rows: body.instances!.length };
  });
  await app.ready(); return app;
}
const row=[0,0,5,13,9,1,0,0,0,0,13,15,10,15,5,0,0,3,15,2,0,11,8,0,0,4,12,0,0,8,8,0,0,5,8,0,0,9,8,0,0,4,11,0,1,12,7,0,0,2,14,5,10,12,0,0,0,0,6,13,10,0,0,0];
const rows = Number(process.argv[2] ?? 1);
const payload = JSON.stringify({ instances: Array.from({ length: rows }, () => row) });
const apps: Record<string, any> = { bare: await bare(), info: await normserve('info'), silent: await normserve('silent') };
const N = Math.max(200, 20000 / rows | 0);
const res: Record<string, number[]> = {};
for (let round = 0; round < 5; round++) for (const [name, app] of Object.entries(apps)) {
  const t = performance.now();
  for (let i = 0; i < N; i++) { const r = await app.inject({ method: 'POST', url: '/v1/models/digits:predict', payload, headers: { 'content-type': 'application/json' } }); if (r.statusCode !== 200) throw new Error(r.body); }
  (res[name] ??= []).push((performance.now() - t) / N * 1000);
}
for (const [k, v] of Object.entries(res)) console.log(k.padEnd(8), v.map((x) => x.toFixed(1)).join(' '), ' median', [...v].sort((a,b)=>a-b)[2]!.toFixed(1), 'µs');
process.exit(0);
