/**
 * `npm start` builds only when src/ changed (tools/build.mjs, also `prepare` of `npm ci`): on a
 * small copy of the project layout, the first run compiles, a second leaves dist/ untouched, an
 * edit rebuilds, and a tree without the compiler says what to install. Outcomes and file
 * contents only, no timings (the start-up figure is measured in the README).
 */
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
afterAll(removeTempDirs);

/** tools/build.mjs and the tsconfig files of the project, over a two-file src/ (a server entry). */
function project(withTypescript = true): string {
  const dir = makeTempDir('build-once');
  mkdirSync(join(dir, 'tools'));
  cpSync(join(ROOT, 'tools/build.mjs'), join(dir, 'tools/build.mjs'));
  for (const f of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) {
    cpSync(join(ROOT, f), join(dir, f));
  }
  mkdirSync(join(dir, 'src/cli'), { recursive: true });
  writeFileSync(join(dir, 'src/cli/hello.ts'), "export const greeting: string = 'hello';\n");
  // The bundle's entry (src/cli/server.ts in the project): it finds a file beside its source.
  writeFileSync(
    join(dir, 'src/cli/server.ts'),
    "import { greeting } from './hello.js';\n" +
      "process.stdout.write(greeting + ' from ' + new URL('.', import.meta.url).pathname + '\\n');\n",
  );
  if (withTypescript) {
    mkdirSync(join(dir, 'node_modules'));
    for (const m of ['typescript', '@types', 'esbuild', '@esbuild']) {
      symlinkSync(join(ROOT, 'node_modules', m), join(dir, 'node_modules', m));
    }
  }
  return dir;
}

const build = (dir: string) =>
  spawnSync(process.execPath, ['tools/build.mjs'], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 120_000,
  });

describe('tools/build.mjs', () => {
  it('compiles when dist/ is missing or stale and does nothing when it is current', () => {
    const dir = project();
    const output = join(dir, 'dist/cli/hello.js');

    const first = build(dir);
    expect(first.status, first.stderr).toBe(0);
    // What it is doing, first (npm ci sat silent through it), then how long it took.
    expect(first.stderr).toMatch(
      /^build: compiling src\/ to dist\/ \(tsc, then the server bundle\)…\nbuild: compiled src\/ to dist\/ in \d+\.\d s\n$/,
    );
    expect(readFileSync(output, 'utf8')).toContain("export const greeting = 'hello';");
    // The bundle runs on its own, and its modules see their import.meta.url as in dist/cli/.
    const bundled = spawnSync(process.execPath, ['dist/bundle/server.js'], {
      cwd: dir,
      encoding: 'utf8',
    });
    expect(bundled.stdout).toBe(`hello from ${join(dir, 'dist/cli')}/\n`);
    const builtAt = statSync(output).mtimeMs;

    const second = build(dir);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr).toBe('');
    expect(statSync(output).mtimeMs).toBe(builtAt);

    // An edit (and a deleted source) rebuilds from an empty dist/.
    writeFileSync(join(dir, 'src/cli/hello.ts'), "export const greeting: string = 'hi';\n");
    writeFileSync(join(dir, 'src/cli/extra.ts'), 'export const extra = 1;\n');
    expect(build(dir).status).toBe(0);
    expect(readFileSync(output, 'utf8')).toContain("'hi'");
    expect(existsSync(join(dir, 'dist/cli/extra.js'))).toBe(true);
    rmSync(join(dir, 'src/cli/extra.ts'));
    expect(build(dir).status).toBe(0);
    expect(existsSync(join(dir, 'dist/cli/extra.js'))).toBe(false);
  }, 240_000);

  it('without the devDependencies: a built tree still starts, a stale one says what to install', () => {
    const dir = project();
    expect(build(dir).status).toBe(0);
    rmSync(join(dir, 'node_modules'), { recursive: true });
    const current = build(dir);
    expect(current.status, current.stderr).toBe(0);
    expect(current.stderr).toBe('');

    writeFileSync(join(dir, 'src/cli/hello.ts'), "export const greeting: string = 'changed';\n");
    const stale = build(dir);
    expect(stale.status).toBe(1);
    expect(stale.stderr).toBe(
      'build: dist/ is missing or older than src/, and building it needs the devDependencies (typescript, esbuild): run `npm ci` (without --omit=dev)\n',
    );
    expect(readFileSync(join(dir, 'dist/cli/hello.js'), 'utf8')).toContain("'hello'");
  }, 120_000);
});
