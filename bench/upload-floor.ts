/**
 * The floor under the recalibration section's HTTP figure (issue 16): what it costs this machine
 * to move the same float32 body from the same client to a server that does nothing with it. A
 * bare node:http server in a process of its own reads the body into one array it reuses (as
 * RowBlockPool reuses the recalibration's blocks), hashes it with SHA-256 (the data_sha256 every
 * recalibration records) and answers 201; the client is the section's own (postRecalibration).
 * The HTTP figure can be no faster than this plus the statistics that cannot overlap the upload
 * (every BatchNorm after the first) plus publishing.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { freePort } from './http.js';
import { postRecalibration } from './recalibration-setup.js';

const SERVER = `
const http = require('node:http');
const { createHash } = require('node:crypto');
let held = new Uint8Array(0);
http.createServer((req, res) => {
  const length = Number(req.headers['content-length']);
  if (held.length < length) held = new Uint8Array(length);
  const hash = createHash('sha256');
  let at = 0;
  req.on('data', (part) => { held.set(part, at); at += part.length; hash.update(part); });
  req.on('end', () => {
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ bytes: at, sha256: hash.digest('hex') }));
  });
}).listen(Number(process.env.PORT), '127.0.0.1', () => process.stdout.write('listening\\n'));
`;

/** Wall seconds of each of `rounds` posts of `body` to a bare server (first, warm-up, dropped). */
export async function uploadFloorSeconds(body: Buffer, rounds: number): Promise<number[]> {
  const port = await freePort();
  const child = spawn(process.execPath, ['-e', SERVER], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await once(child.stdout!, 'data');
    const seconds: number[] = [];
    for (let r = 0; r <= rounds; r++) {
      const started = performance.now();
      await postRecalibration(port, 'exact', 'application/octet-stream', body);
      if (r > 0) seconds.push((performance.now() - started) / 1000);
    }
    return seconds;
  } finally {
    child.kill();
  }
}
