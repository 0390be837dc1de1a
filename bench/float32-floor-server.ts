/**
 * The transport floor of a 256-row float32 predict: a bare Fastify route that reads the
 * application/octet-stream body as normserve's binary route does (Fastify's buffer parser, the
 * same body limit) and answers 256 × 10 float32 prepared once, with no check, no inference, no
 * log line and no metrics. Env: PORT. Used by float32-floor.ts.
 */
import Fastify from 'fastify';

const ROWS = 256;
const WIDTH = 64;
const CLASSES = 10;
const answer = Buffer.alloc(ROWS * CLASSES * 4);
const app = Fastify({ bodyLimit: 16 * 1024 * 1024 });
app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_r, body, done) =>
  done(null, body),
);
app.post('/v1/models/:name', async (request, reply) => {
  if ((request.body as Buffer).length !== ROWS * WIDTH * 4) throw new Error('expected 256 rows');
  return reply
    .type('application/octet-stream')
    .header('X-Output-Shape', `${ROWS},${CLASSES}`)
    .send(answer);
});
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
process.stdout.write(`listening ${(app.server.address() as { port: number }).port}\n`);
