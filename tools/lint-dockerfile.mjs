// Lints a Dockerfile with dockerfile-utils and fails on any diagnostic (its CLI always exits 0).
import { readFileSync } from 'node:fs';
import { validate } from 'dockerfile-utils';

const file = process.argv[2] ?? 'Dockerfile';
const diagnostics = validate(readFileSync(file, 'utf8'));
for (const d of diagnostics) {
  process.stdout.write(`${file}:${d.range.start.line + 1}:${d.range.start.character + 1} ${d.message}\n`);
}
process.stdout.write(`${file}: ${diagnostics.length} problem(s)\n`);
process.exitCode = diagnostics.length > 0 ? 1 : 0;
