/**
 * What the recalibration benches share: the admin token, the environment of a server that answers
 * a recalibration in one synchronous request, a model directory's network, and the night-shifted
 * digits rows.
 */
import { readFileSync } from 'node:fs';
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
