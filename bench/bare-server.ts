/**
 * The baseline of the HTTP benchmark: a bare Fastify route that parses and validates the same
 * predict body the way normserve does (the check compiled from the same zod schema for a 64-wide
 * model, zod itself for what it refuses) and does no inference. Env: PORT.
 */
import Fastify from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { predictRequestSchema, predictRequestSchemaFor } from '../src/http/schemas/tf-serving.js';
import { parseWith, serializerCompiler, validatorCompiler } from '../src/http/validation.js';
import { compileAccepts } from '../src/service/index.js';

const app = Fastify({
  bodyLimit: 16 * 1024 * 1024,
  onProtoPoisoning: 'error',
  onConstructorPoisoning: 'error',
}).withTypeProvider<ZodTypeProvider>();
app.setValidatorCompiler(validatorCompiler);
app.setSerializerCompiler(serializerCompiler);
const accepts = compileAccepts(predictRequestSchemaFor([64], 4096))!;
app.post('/v1/models/:name(^[A-Za-z0-9][A-Za-z0-9._-]*)::predict', async (request) => {
  const body = (
    accepts(request.body) ? request.body : parseWith(predictRequestSchema, request.body, 'body')
  ) as { instances?: unknown[]; inputs?: unknown[] };
  return { model_version: 0, rows: (body.instances ?? body.inputs)!.length };
});
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
process.stdout.write(`listening ${(app.server.address() as { port: number }).port}\n`);
