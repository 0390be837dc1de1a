import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NormserveError } from '../../src/errors/index.js';
import type { HelperSpawner } from '../../src/inference/index.js';
import { createRecalibrator } from '../../src/recalibration/index.js';
import {
  JobRegistry,
  ModelRegistry,
  nodeEngineOptions,
  RecalibrationService,
  type RecalibrationSession,
} from '../../src/service/index.js';
import { bundledVersionDir, copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';
import { loadModel, WIDTH } from '../recalibration/helpers/digits-fixtures.js';

const night = Float32Array.from(nightShift(digitsTestRows().x).flat());
/** `rows` night rows (repeated), with a NaN at [badRow, 3] when given. */
function rows(count: number, badRow?: number): Float32Array {
  const out = new Float32Array(count * WIDTH);
  for (let i = 0; i < out.length; i++) out[i] = night[i % night.length]!;
  if (badRow !== undefined) out[badRow * WIDTH + 3] = Number.NaN;
  return out;
}

let registry: ModelRegistry;
let service: RecalibrationService;
beforeAll(async () => {
  const repository = makeTempDir('recalibration-push');
  copyBundledModel('digits', repository);
  registry = new ModelRegistry(repository, { maxBatchSize: 64 });
  await registry.refresh();
  service = new RecalibrationService(registry, new JobRegistry(), { maxSamples: 1_000_000 });
});
afterAll(() => {
  registry.close();
  removeTempDirs();
});

/** A session's pushAll, failing the session as the route does when it rejects. */
async function pushAllOf(
  session: RecalibrationSession,
  chunks: AsyncIterable<Float32Array>,
): Promise<unknown> {
  try {
    await session.pushAll(chunks);
    return undefined;
  } catch (e) {
    await session.fail(e);
    return e;
  }
}

/** A session; `parsed`: as for an NDJSON upload, its first statistics on a helper thread. */
const begin = (parsed = false) =>
  service.begin({ model: 'digits', mode: 'exact', activate: false, parsedAsItArrives: parsed });

describe('RecalibrationSession.pushAll', () => {
  it.each([
    ['on the calling thread', false],
    ['on a helper thread', true],
  ])(
    'a refused chunk rejects while the next read is still waiting for bytes (statistics %s)',
    async (_, parsed) => {
      const session = await begin(parsed);
      const events: string[] = [];
      let release: () => void = () => {};
      const stalled = new Promise<void>((resolve) => {
        release = resolve;
      });
      async function* upload() {
        yield rows(4096, 7);
        events.push('reading the next chunk');
        await stalled; // a client that stopped sending
        events.push('next chunk read');
        yield rows(10);
      }
      const error = await pushAllOf(session, upload());
      events.push('rejected');
      release();
      expect(error).toBeInstanceOf(NormserveError);
      expect((error as NormserveError).code).toBe('INVALID_INPUT');
      expect((error as NormserveError).message).toBe('row 7, column 3: NaN is not a finite number');
      expect(events).toEqual(['reading the next chunk', 'rejected']);
      // The model is free again.
      const next = await begin();
      await next.pushAll([rows(100)]);
      expect((await next.complete()).samples).toBe(100);
    },
  );

  it("a refused chunk's error wins over a read error that follows it", async () => {
    const session = await begin(true);
    async function* upload() {
      yield rows(4096, 9);
      throw new NormserveError('BODY_TOO_LARGE', 'upload larger than the limit');
    }
    const error = await pushAllOf(session, upload());
    expect((error as NormserveError).code).toBe('INVALID_INPUT');
    expect((error as NormserveError).message).toMatch(/^row 9, column 3/);
    // A read error with no refused chunk before it is the one reported.
    const other = await begin();
    async function* cut() {
      yield rows(4096);
      throw new NormserveError('CLIENT_ABORTED', 'the client closed the connection');
    }
    expect(((await pushAllOf(other, cut())) as NormserveError).code).toBe('CLIENT_ABORTED');
  });

  it('push after a refused chunk rejects with the same error', async () => {
    const session = await begin();
    const first = await session.push(rows(50, 2)).catch((e: unknown) => e);
    expect((first as NormserveError).code).toBe('INVALID_INPUT');
    await expect(session.push(rows(50))).rejects.toBe(first);
    await session.fail(first);
  });
});

describe('helper threads of a recalibration', () => {
  it('running mode starts one helper for every BatchNorm of the network together', async () => {
    const { network, inputTransform } = loadModel(bundledVersionDir('digits'));
    const { spawnHelper } = nodeEngineOptions({});
    let spawned = 0;
    const counting: HelperSpawner = (init) => {
      spawned++;
      return spawnHelper!(init);
    };
    const recalibrator = createRecalibrator(network, inputTransform, WIDTH, {
      mode: 'running',
      batchSize: 1024,
      engine: { threads: 2, spawnHelper: counting },
    });
    await recalibrator.push(rows(5000));
    const result = await recalibrator.finish();
    expect(result.batches).toBe(5);
    // Two BatchNorms, one helper: the first BatchNorm's plan, which overlaps the upload.
    expect(spawned).toBe(1);
  });
});
