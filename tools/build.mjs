// `npm run build` (also run by `npm ci` through `prepare`, and by `npm start`): compiles src/ to
// dist/ when dist/ is not current, and does nothing when it is. "Current": the sha256 of what the
// output depends on (every file under src/, the tsconfig files) and the TypeScript version match
// dist/.build-hash. Checking reads ~100 small files, tens of milliseconds, where even a no-op
// incremental `tsc -b` spends about a second loading the compiler: `npm start` on a built
// checkout goes straight to the server. Content, not modification times: a git checkout or a
// copied tree changes mtimes without changing the output. `--force` rebuilds anyway.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const stampFile = join(dist, '.build-hash');
const force = process.argv.includes('--force');

function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name))
    .sort();
}

/** The installed compiler (its package.json only: loading typescript itself takes ~0.5 s). */
function findTypescript() {
  try {
    const require = createRequire(join(root, 'package.json'));
    const manifest = require.resolve('typescript/package.json');
    return {
      tsc: join(dirname(manifest), 'bin', 'tsc'),
      version: JSON.parse(readFileSync(manifest, 'utf8')).version,
    };
  } catch {
    return undefined;
  }
}

const typescript = findTypescript();
const hash = createHash('sha256');
const inputs = [
  join(root, 'tsconfig.json'),
  join(root, 'tsconfig.build.json'),
  ...filesUnder(join(root, 'src')),
];
for (const file of inputs) {
  hash.update(`${relative(root, file)}\n`);
  hash.update(readFileSync(file));
}
// The stamp: `<sources hash> typescript@<version>`. Another compiler version rebuilds; no compiler
// at all (a production install, `npm ci --omit=dev`) accepts a dist/ built from these sources.
const digest = hash.digest('hex');
const compiler = `typescript@${typescript?.version}`;
const [builtDigest, builtCompiler] = existsSync(stampFile)
  ? readFileSync(stampFile, 'utf8').trim().split(' ')
  : [];
const current =
  builtDigest === digest && (typescript === undefined || builtCompiler === compiler);

if (!force && current) process.exit(0);
if (typescript === undefined) {
  process.stderr.write(
    'build: dist/ is missing or older than src/, and building it needs the devDependencies ' +
      '(typescript): run `npm ci` (without --omit=dev)\n',
  );
  process.exit(1);
}
const started = performance.now();
// A full build into an empty dist/: outputs of deleted sources do not linger, and nothing depends
// on tsc's own (mtime-based) idea of what changed.
rmSync(dist, { recursive: true, force: true });
const result = spawnSync(process.execPath, [typescript.tsc, '-p', 'tsconfig.build.json'], {
  cwd: root,
  stdio: 'inherit',
});
if (result.status !== 0) {
  process.stderr.write(`build: tsc failed (exit ${result.status ?? result.signal})\n`);
  process.exit(result.status ?? 1);
}
writeFileSync(stampFile, `${digest} ${compiler}\n`);
process.stderr.write(
  `build: compiled src/ to dist/ in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
);
