// `npm run build` (also run by `npm ci` through `prepare`, and by `npm start` through
// tools/start.mjs): compiles src/ to dist/ when dist/ is not current, and does nothing when it is.
// "Current": the sha256 of what the output depends on (every file under src/, the tsconfig files,
// package-lock.json: the bundle holds the dependencies' code) and the TypeScript and esbuild
// versions match dist/.build-hash. Checking reads ~100 small files, tens of milliseconds, where
// even a no-op incremental `tsc -b` spends about a second loading the compiler: `npm start` on a
// built checkout goes straight to the server. Content, not modification times: a git checkout or
// a copied tree changes mtimes without changing the output. `--force` rebuilds anyway.
//
// Two outputs: tsc's dist/ (the library, its declarations, `node dist/cli/server.js`) and the
// server bundled by esbuild into dist/bundle/ (what `npm start` and the container run): one file
// per process kind instead of ~900 modules, each resolved, read and compiled by every worker,
// which was most of a worker's start-up (README, Build once).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const stampFile = join(dist, '.build-hash');
/** The server's bundle: `node dist/bundle/server.js` is what `npm start` and the image run. */
export const BUNDLE_DIR = join(dist, 'bundle');
export const SERVER_BUNDLE = join(BUNDLE_DIR, 'server.js');

function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name))
    .sort();
}

/** An installed devDependency (its package.json only: loading typescript itself takes ~0.5 s). */
function findPackage(name) {
  try {
    const require = createRequire(join(root, 'package.json'));
    const manifest = require.resolve(`${name}/package.json`);
    return { dir: dirname(manifest), version: JSON.parse(readFileSync(manifest, 'utf8')).version };
  } catch {
    return undefined;
  }
}

/**
 * Where a bundled module's `import.meta.url`, `__dirname` and `__filename` point: the file it
 * would be without the bundle (dist/<path>.js for src/<path>.ts, the package's own file under
 * node_modules), as a path relative to the bundle. Modules find files beside them that way
 * (proto/, dashboard/, package.json, @fastify/swagger-ui's static/), in a checkout and in the
 * image alike (dist/ and node_modules/ are siblings in both).
 */
const ownLocation = {
  name: 'own-location',
  setup(build) {
    build.onLoad({ filter: /\/src\/.*\.ts$/ }, async (args) => {
      const file = join(dist, relative(join(root, 'src'), args.path)).replace(/\.ts$/, '.js');
      const url = `new URL(${JSON.stringify(relative(BUNDLE_DIR, file))}, import.meta.url).href`;
      const text = await readFile(args.path, 'utf8');
      return { contents: text.replaceAll('import.meta.url', url), loader: 'ts' };
    });
    build.onLoad({ filter: /\/node_modules\/.*\.[cm]?js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      if (!/\b__(dirname|filename)\b/.test(text)) return undefined;
      // Declared at the top of the module (esbuild wraps a CommonJS module in a function, so the
      // names stay the module's own).
      const at = (path) => `__nsBundled(${JSON.stringify(relative(BUNDLE_DIR, path))})`;
      const own = `var __dirname = ${at(dirname(args.path))}, __filename = ${at(args.path)};\n`;
      return { contents: own + text, loader: 'js' };
    });
  },
};

/** The server's entry, bundled with its dependencies (a chunk per process kind: primary, worker). */
async function bundleServer(esbuild) {
  const { build } = await import(pathToFileURL(join(esbuild.dir, 'lib', 'main.js')).href);
  rmSync(BUNDLE_DIR, { recursive: true, force: true });
  await build({
    absWorkingDir: root,
    entryPoints: [join(root, 'src/cli/server.ts')],
    outdir: BUNDLE_DIR,
    bundle: true,
    // The primary loads only its own chunk (zod, pino, prom-client), not the app and engines.
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // Stack traces name src/ files and lines under `node --enable-source-maps`; the map points
    // at the sources instead of holding them.
    sourcemap: 'linked',
    // Less to read, decode and parse in every worker; names kept (Fastify and avvio name plugins
    // and hooks by their functions' names, and so do stack traces and logs).
    minify: true,
    keepNames: true,
    sourcesContent: false,
    // Fastify's default schema compilers (ajv, fast-json-stringify): app.ts supplies the zod
    // ones, so they are never loaded; left out, they stay loadable from node_modules.
    external: ['@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler'],
    // CommonJS dependencies require Node's modules (and the externals above) at run time.
    banner: {
      js: [
        "import { createRequire as __nsCreateRequire } from 'node:module';",
        "import { fileURLToPath as __nsFileURLToPath } from 'node:url';",
        'const require = __nsCreateRequire(import.meta.url);',
        'const __nsBundled = (path) => __nsFileURLToPath(new URL(path, import.meta.url));',
      ].join(' '),
    },
    // jsonc-parser's `main` is a UMD build whose requires esbuild cannot follow; its ESM build.
    alias: { 'jsonc-parser': 'jsonc-parser/lib/esm/main.js' },
    plugins: [ownLocation],
    logLevel: 'warning',
  });
}

/**
 * Builds dist/ unless it is current (or `force`). Returns the exit status: 0 built or current,
 * otherwise what failed was written to stderr.
 */
export async function ensureBuilt({ force = false } = {}) {
  const typescript = findPackage('typescript');
  const esbuild = findPackage('esbuild');
  const hash = createHash('sha256');
  const inputs = [
    join(root, 'tsconfig.json'),
    join(root, 'tsconfig.build.json'),
    join(root, 'package-lock.json'),
    ...filesUnder(join(root, 'src')),
  ].filter((file) => existsSync(file));
  for (const file of inputs) {
    hash.update(`${relative(root, file)}\n`);
    hash.update(readFileSync(file));
  }
  // The stamp: `<sources hash> typescript@<version> esbuild@<version>`. Other tool versions
  // rebuild; no tools at all (a production install, `npm ci --omit=dev`) accept a dist/ built from
  // these sources.
  const digest = hash.digest('hex');
  const tools = [`typescript@${typescript?.version}`, `esbuild@${esbuild?.version}`];
  const [builtDigest, ...builtTools] = existsSync(stampFile)
    ? readFileSync(stampFile, 'utf8').trim().split(' ')
    : [];
  const current =
    builtDigest === digest &&
    (typescript === undefined || builtTools[0] === tools[0]) &&
    (esbuild === undefined || builtTools[1] === tools[1]);

  if (!force && current) return 0;
  if (typescript === undefined || esbuild === undefined) {
    process.stderr.write(
      'build: dist/ is missing or older than src/, and building it needs the devDependencies ' +
        '(typescript, esbuild): run `npm ci` (without --omit=dev)\n',
    );
    return 1;
  }
  const started = performance.now();
  // Said first: `npm ci` and a first `npm start` otherwise sat silent for the whole build.
  process.stderr.write('build: compiling src/ to dist/ (tsc, then the server bundle)…\n');
  // A full build into an empty dist/: outputs of deleted sources do not linger, and nothing
  // depends on tsc's own (mtime-based) idea of what changed.
  rmSync(dist, { recursive: true, force: true });
  const result = spawnSync(
    process.execPath,
    [join(typescript.dir, 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
    { cwd: root, stdio: 'inherit' },
  );
  if (result.status !== 0) {
    process.stderr.write(`build: tsc failed (exit ${result.status ?? result.signal})\n`);
    return result.status ?? 1;
  }
  try {
    await bundleServer(esbuild);
  } catch (e) {
    process.stderr.write(`build: bundling the server failed: ${e instanceof Error ? e.message : e}\n`);
    return 1;
  }
  writeFileSync(stampFile, `${digest} ${tools.join(' ')}\n`);
  process.stderr.write(
    `build: compiled src/ to dist/ in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
  );
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv.includes('--bundle-only')) await bundleServer(findPackage('esbuild'));
  else process.exitCode = await ensureBuilt({ force: process.argv.includes('--force') });
}
