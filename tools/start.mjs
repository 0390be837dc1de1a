// `npm start`: builds dist/ when it is not current (tools/build.mjs, in this process: no second
// node start-up), then runs the bundled server (dist/bundle/server.js) in this same process.
// Cluster workers run this file too (node:cluster forks process.argv[1]); only the primary checks.
import cluster from 'node:cluster';

if (cluster.isPrimary) {
  const { ensureBuilt } = await import('./build.mjs');
  const status = await ensureBuilt();
  if (status !== 0) process.exit(status);
}
// Stack traces name the src/ files and lines (the bundle is minified), as under
// `node --enable-source-maps`; the maps are read as the bundle's files load.
process.setSourceMapsEnabled(true);
await import('../dist/bundle/server.js');
