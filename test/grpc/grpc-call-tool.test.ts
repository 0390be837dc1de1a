/**
 * tools/grpc-call.ts (`npm run -s grpc`) against a real gRPC server: -H sends metadata (the bearer
 * token), and an error prints its status as grpcurl does plus normserve's error code.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { ROOT } from '../helpers/entries.js';
import { startGrpc } from '../helpers/grpc.js';

const run = promisify(execFile);
const TOKEN = 'grpc-tool-token-0123456789';

let t: TestApp;
let g: Awaited<ReturnType<typeof startGrpc>>;
beforeAll(async () => {
  t = await makeTestApp({ models: ['digits'] });
  g = await startGrpc(t, { apiToken: TOKEN });
});
afterAll(async () => {
  await g.stop();
  await t.close();
});

/** The tool's exit code, stdout and stderr (asynchronously: the server runs in this process). */
async function tool(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ['--import', 'tsx', 'tools/grpc-call.ts', ...args],
      { cwd: ROOT, timeout: 120_000 },
    );
    return { code: 0, stdout, stderr };
  } catch (e) {
    const failed = e as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** A ModelInfer request of one digits row, in the protobuf JSON mapping. */
const INFER = JSON.stringify({
  model_name: 'digits',
  inputs: [
    {
      name: 'input',
      datatype: 'FP32',
      shape: [1, 64],
      contents: { fp32_contents: Array.from({ length: 64 }, (_, i) => i % 17) },
    },
  ],
});

describe('npm run -s grpc', () => {
  it('prints an error as grpcurl does, with the normserve-code trailer', async () => {
    const refused = await tool(`127.0.0.1:${g.port}`, 'ModelInfer', INFER);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^ERROR:\n {2}Code: Unauthenticated\n {2}Message: .+\n/);
    expect(refused.stderr).toContain('  normserve-code: UNAUTHORIZED\n');
    const missing = await tool(`127.0.0.1:${g.port}`, 'ModelMetadata', '{"name":"nope"}');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('  Code: NotFound\n');
    expect(missing.stderr).toContain('  normserve-code: MODEL_NOT_FOUND\n');
  });

  it('-H sends metadata: with the bearer token the inference is answered', async () => {
    const auth = `authorization: Bearer ${TOKEN}`;
    const answered = await tool('-H', auth, `127.0.0.1:${g.port}`, 'ModelInfer', INFER);
    expect(answered.code, answered.stderr).toBe(0);
    expect(JSON.parse(answered.stdout)).toMatchObject({ modelName: 'digits' });
  });
});
