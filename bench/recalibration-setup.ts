/**
 * What the recalibration benches share: the admin token, the environment of a server that answers
 * a recalibration in one synchronous request, a model directory's network, and the night-shifted
 * digits rows.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import {
  networkFromCheckpoint,
  parseModelConfig,
  readSafetensors,
  safetensorsToStateDict,
} from '../src/checkpoint/index.js';
import { freePort } from './http.js';

export const TOKEN = 'bench-admin-token-0123456789';

/** WORKERS=1 on a free port, no gRPC, no polling; one synchronous request per recalibration. */
export async function recalibrationServerEnv(repository: string): Promise<Record<string, string>> {
  return {
    MODEL_REPOSITORY: repository,
    MODEL_POLL_INTERVAL_MS: '0',
    ADMIN_TOKEN: TOKEN,
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    WORKERS: '1',
    PORT: String(await freePort()),
    GRPC_PORT: '0',
    // One synchronous request: its answer is the published version and its duration_ms.
    RECALIBRATION_ASYNC_ROWS: '2000000',
  };
}

export function loadNetwork(dir: string) {
  const config = parseModelConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  const file = readSafetensors(
    new Uint8Array(readFileSync(join(dir, 'model.safetensors'))),
    'model.safetensors',
  );
  return {
    config,
    network: networkFromCheckpoint(config, safetensorsToStateDict(file, 'model.safetensors')),
  };
}

/** The digits pixels with the project's night shift x' = 16·(0.35·(x/16) + 0.1), tiled to n rows. */
export function nightRows(n: number): Float32Array {
  const lines = readFileSync('data/digits/digits.csv', 'utf8').trim().split('\n').slice(1);
  const base = new Float32Array(lines.length * 64);
  lines.forEach((line, r) => {
    const cells = line.split(',').map(Number);
    for (let c = 0; c < 64; c++) base[r * 64 + c] = 16 * (0.35 * (cells[c]! / 16) + 0.1);
  });
  const out = new Float32Array(n * 64);
  for (let r = 0; r < n; r++)
    out.set(base.subarray((r % lines.length) * 64, ((r % lines.length) + 1) * 64), r * 64);
  return out;
}

/**
 * A recalibration body posted with node:http (Content-Length, one write): a lean client, so that
 * the figure is the server's. fetch() (undici) spent about 0.5 s of the bench's CPU on each
 * 51 MiB body — on the same two cores as the server — and added 0.4–0.7 s of wall time to a
 * request the server took 0.6–1.0 s over (bench/recalibration-clients.ts, bench/README.md).
 * Resolves with the 201 answer's JSON.
 */
export function postRecalibration<T>(
  port: number,
  mode: string,
  contentType: string,
  body: Buffer,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `http://127.0.0.1:${port}/v1/models/digits:recalibrate?mode=${mode}`,
      {
        method: 'POST',
        headers: {
          authorization: `Bearer ${TOKEN}`,
          'content-type': contentType,
          'content-length': body.length,
        },
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (part: string) => {
          text += part;
        });
        response.on('error', reject);
        response.on('end', () => {
          if (response.statusCode !== 201)
            reject(new Error(`recalibrate answered ${response.statusCode}: ${text.slice(0, 500)}`));
          else resolve(JSON.parse(text) as T);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
