/**
 * Before every test run: bundles the programs tests start as child processes (see
 * test/helpers/entries.ts). A failed build removes the bundles, and the children run through tsx.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { BUNDLE_DIR, bundlePath, ENTRIES, ROOT } from './helpers/entries.js';

export default async function setup(): Promise<void> {
  rmSync(BUNDLE_DIR, { recursive: true, force: true });
  try {
    await Promise.all(
      ENTRIES.map((entry) =>
        build({
          entryPoints: [join(ROOT, entry)],
          outfile: bundlePath(entry),
          bundle: true,
          platform: 'node',
          format: 'esm',
          target: 'node20',
          packages: 'external',
          // import.meta.url as in the source file (server.ts reads ../../package.json by it).
          define: { 'import.meta.url': JSON.stringify(pathToFileURL(join(ROOT, entry)).href) },
          logLevel: 'warning',
        }),
      ),
    );
  } catch (e) {
    rmSync(BUNDLE_DIR, { recursive: true, force: true });
    process.stderr.write(`test entry bundles not built, children run through tsx: ${String(e)}\n`);
  }
}
