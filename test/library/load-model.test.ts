/**
 * The library entry: `import { loadModel } from 'normserve'` — from the sources (as a checkout
 * runs it with tsx) and, built, from another project through package.json's exports.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/index.js';
import { bundledVersionDir, copyBundledModel } from '../helpers/bundled-models.js';
import { expectClose } from '../helpers/compare.js';
import { digitsTestRows } from '../helpers/digits.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';
import { BUNDLED_LOGITS_ATOL, OUTPUT_ATOL } from '../helpers/tolerances.js';

const run = promisify(execFile);
afterAll(removeTempDirs);
const torch = JSON.parse(
  readFileSync('test/fixtures/torch-model/bundled-digits-eval.json', 'utf8'),
) as { logits: number[][] };
const { x } = digitsTestRows();
const input = Float32Array.from(x.flat());

describe('loadModel (src/index.ts)', () => {
  it("describes the model and runs raw rows to PyTorch's logits", async () => {
    // A model directory (`<repository>/<model>`, its active version) of a repository of its own.
    const repository = makeTempDir('load-model');
    copyBundledModel('digits', repository);
    const model = await loadModel(join(repository, 'digits'), { engine: TEST_ENGINE });
    expect(model).toMatchObject({
      name: 'digits',
      version: 1,
      task: 'classification',
      inputShape: [64],
      outputWidth: 10,
      labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
      engine: TEST_ENGINE,
    });
    const logits = model.run(input, x.length);
    expect(logits).toBeInstanceOf(Float32Array);
    expectClose(logits, torch.logits.flat(), BUNDLED_LOGITS_ATOL, 'logits');
    expect(model.run(input.subarray(0, 64), 1)).toEqual(logits.subarray(0, 10));
    model.close();
  });

  it('refuses options the server configuration would refuse, and unknown ones, as INVALID_INPUT', async () => {
    const dir = bundledVersionDir('digits');
    const refusals: [object, string][] = [
      [{ engine: 'gpu' }, 'loadModel options: engine: expected one of "wasm", "js", got "gpu"'],
      [{ threads: 0 }, 'loadModel options: threads: expected an integer from 1 to 64, got 0'],
      [{ threads: 1.5 }, 'loadModel options: threads: expected an integer from 1 to 64, got 1.5'],
      [
        { maxBatchSize: 0 },
        'loadModel options: maxBatchSize: expected an integer from 1 to 1000000, got 0',
      ],
      [
        { thread: 2 },
        'loadModel options: (root): unknown field "thread" (did you mean "threads"?)',
      ],
    ];
    for (const [options, message] of refusals)
      await expect(loadModel(dir, options), JSON.stringify(options)).rejects.toMatchObject({
        code: 'INVALID_INPUT',
        message,
      });
  });

  it("refuses a missing or empty path as INVALID_INPUT, not with Node's ERR_INVALID_ARG_TYPE (review60)", async () => {
    const call = loadModel as (dir?: unknown) => Promise<unknown>;
    for (const [dir, got] of [
      [undefined, 'undefined'],
      ['', '""'],
      [42, 'number'],
    ] as const)
      await expect(call(dir)).rejects.toMatchObject({
        code: 'INVALID_INPUT',
        message: `loadModel(dir): dir is a model directory's path (<repository>/<model> or a version directory), got ${got}`,
      });
  });

  it('takes a Float32Array or an array of numbers of rows × width values; anything else is INVALID_INPUT', async () => {
    const model = await loadModel(bundledVersionDir('digits'), { engine: TEST_ENGINE });
    const two = input.subarray(0, 128);
    const expected = model.run(two, 2);
    // An array of numbers gives the same outputs as its Float32Array.
    expect(model.run(Array.from(two), 2)).toEqual(expected);
    const refused = (given: unknown, rows: unknown, message: string) =>
      expect(() => model.run(given as Float32Array, rows as number), message).toThrow(
        expect.objectContaining({ code: 'INVALID_INPUT', message }),
      );
    refused(two, 1, 'input: expected 64 values (1 × 64 per row), got 128');
    refused(two, 3, 'input: expected 192 values (3 × 64 per row), got 128');
    refused([...two, 1], 2, 'input: expected 128 values (2 × 64 per row), got 129');
    refused(two, 0, 'rows: expected an integer ≥ 1, got 0');
    refused(two, 1.5, 'rows: expected an integer ≥ 1, got 1.5');
    refused(
      Float64Array.from(two),
      2,
      'input: expected a Float32Array or an array of numbers, got a Float64Array',
    );
    refused('0,1', 1, 'input: expected a Float32Array or an array of numbers, got "0,1"');
    const text = Array.from(two) as unknown[];
    text[7] = '3';
    refused(text, 2, 'input[7]: expected a number, got "3"');
    // A NaN in an array is named as in a Float32Array (it was `input.subarray is not a function`).
    const withNaN = Array.from(two);
    withNaN[69] = Number.NaN;
    refused(withNaN, 2, 'input[69]: expected a finite number, got NaN');
    model.close();
  });

  it('refuses a row whose outputs are not finite as the server does: INVALID_INPUT naming the row', async () => {
    const model = await loadModel(bundledVersionDir('digits'), { engine: TEST_ENGINE });
    const rows = Float32Array.from([...x[0]!, ...Array.from({ length: 64 }, () => 3e38), ...x[1]!]);
    expect(() => model.run(rows, 3)).toThrow(
      expect.objectContaining({
        code: 'INVALID_INPUT',
        message:
          "input (row 1): the model's outputs overflow float32 for this row (values too large)",
      }),
    );
    // A value that is not a number at all is named as such (as a binary request's would be).
    rows.set(x[0]!, 64);
    rows[64 + 5] = Number.NaN;
    expect(() => model.run(rows, 3)).toThrow(
      expect.objectContaining({
        code: 'INVALID_INPUT',
        message: 'input[69]: expected a finite number, got NaN',
      }),
    );
    // Outputs that are finite are returned as before, and the model keeps working.
    rows[64 + 5] = x[0]![5]!;
    const logits = model.run(rows, 3);
    expect(logits.subarray(10, 20)).toEqual(logits.subarray(0, 10));
    model.close();
  });

  it("a convolutional model on the wasm engine: input shape [1, 8, 8], images flat, PyTorch's logits", async () => {
    const cnnTorch = JSON.parse(
      readFileSync('test/fixtures/torch-model/bundled-digits-cnn-eval.json', 'utf8'),
    ) as { logits: number[][] };
    const model = await loadModel(bundledVersionDir('digits-cnn'), { engine: 'wasm' });
    // Convolutions, pooling and the residual block have wasm kernels: no fallback to JS.
    expect(model).toMatchObject({ name: 'digits-cnn', inputShape: [1, 8, 8], engine: 'wasm' });
    expectClose(model.run(input, x.length), cnnTorch.logits.flat(), BUNDLED_LOGITS_ATOL, 'logits');
    model.close();
  });

  it('wasm and js engines agree; two threads give one thread’s bits', async () => {
    const js = await loadModel(bundledVersionDir('digits'), { engine: 'js' });
    const wasm = await loadModel(bundledVersionDir('digits'), { engine: 'wasm', threads: 1 });
    const both = await loadModel(bundledVersionDir('digits'), { engine: 'wasm', threads: 2 });
    expect([js.engine, wasm.engine, both.engine]).toEqual(['js', 'wasm', 'wasm']);
    const big = new Float32Array(4096 * 64);
    for (let i = 0; i < big.length; i++) big[i] = input[i % input.length]!;
    const one = wasm.run(big, 4096);
    expectClose(one, js.run(big, 4096), OUTPUT_ATOL, 'wasm vs js');
    expect(Buffer.from(both.run(big, 4096).buffer).equals(Buffer.from(one.buffer))).toBe(true);
    for (const m of [js, wasm, both]) m.close();
  });
});

describe("the README's Library example", () => {
  it('runs as written from a checkout (its import resolved to the sources) and prints the label', async () => {
    const readme = readFileSync('README.md', 'utf8');
    const section = readme.slice(readme.indexOf('\n## Library\n'));
    const example = /```ts\n([\s\S]*?)```/.exec(section)![1]!;
    expect(example).toContain("from 'normserve'");
    // A checkout of its own: models/digits holds the bundled version only.
    const checkout = makeTempDir('readme-library');
    copyBundledModel('digits', join(checkout, 'models'));
    const file = join(checkout, 'example.mts');
    writeFileSync(
      file,
      example.replace(
        "from 'normserve'",
        `from ${JSON.stringify(pathToFileURL(resolve('src/index.ts')).href)}`,
      ),
    );
    const tsx = pathToFileURL(resolve('node_modules/tsx/dist/loader.mjs')).href;
    const { stdout } = await run(process.execPath, ['--import', tsx, file], { cwd: checkout });
    expect(stdout).toBe('0\n');
  }, 120_000);
});

describe("import { loadModel } from 'normserve' in another project", () => {
  it('resolves through package.json exports to the built library, with its types', async () => {
    const root = makeTempDir('library');
    const pkg = join(root, 'normserve');
    const app = join(root, 'app');
    mkdirSync(join(app, 'node_modules'), { recursive: true });
    const tsc = resolve('node_modules/typescript/bin/tsc');
    await run(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', join(pkg, 'dist')]);
    writeFileSync(join(pkg, 'package.json'), readFileSync('package.json'));
    symlinkSync(resolve('node_modules'), join(pkg, 'node_modules'), 'dir');
    symlinkSync(pkg, join(app, 'node_modules', 'normserve'), 'dir');
    writeFileSync(join(app, 'package.json'), JSON.stringify({ type: 'module' }));
    const use = `import { loadModel } from 'normserve';
const model = await loadModel(${JSON.stringify(resolve(bundledVersionDir('digits')))});
const rows: number = 2;
const out: Float32Array = model.run(new Float32Array(rows * model.inputShape[0]!).fill(8), rows);
console.log(JSON.stringify({ engine: model.engine, labels: model.labels, out: Array.from(out) }));
model.close();
`;
    writeFileSync(join(app, 'use.ts'), use);
    const js = use.replace(': number', '').replace(': Float32Array', '').replace('[0]!', '[0]');
    writeFileSync(join(app, 'use.mjs'), js);
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          lib: ['ES2023'],
          typeRoots: [resolve('node_modules/@types')],
          types: ['node'],
          strict: true,
          noEmit: true,
          skipLibCheck: false,
        },
        files: ['use.ts'],
      }),
    );
    await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')]);
    const { stdout } = await run(process.execPath, [join(app, 'use.mjs')], { cwd: app });
    const result = JSON.parse(stdout) as { engine: string; labels: string[]; out: number[] };
    expect(result.engine).toBe('wasm');
    expect(result.labels).toHaveLength(10);
    const model = await loadModel(bundledVersionDir('digits'));
    expect(result.out).toEqual(Array.from(model.run(new Float32Array(2 * 64).fill(8), 2)));
  }, 300_000);
});
