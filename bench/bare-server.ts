/**
 * The baseline of the HTTP benchmark: a bare Fastify route that parses and validates the same
 * predict body with the same zod schema and validator as normserve, and does no inference.
 * Env: PORT.
 */
import Fastify from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { predictRequestSchema } from '../src/http/schemas/tf-serving.js';
import { serializerCompiler, validatorCompiler } from '../src/http/validation.js';

const app = Fastify({
  bodyLimit: 16 * 1024 * 1024,
  onProtoPoisoning: 'error',
  onConstructorPoisoning: 'error',
}).withTypeProvider<ZodTypeProvider>();
app.setValidatorCompiler(validatorCompiler);
app.setSerializerCompiler(serializerCompiler);
app.post(
  '/v1/models/:name(^[A-Za-z0-9][A-Za-z0-9._-]*)::predict',
  { schema: { body: predictRequestSchema } },
  async (request) => ({
    model_version: 0,
    rows: (request.body.instances ?? request.body.inputs)!.length,
  }),
);
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
process.stdout.write(`listening ${(app.server.address() as { port: number }).port}\n`);
