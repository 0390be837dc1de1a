/**
 * The layering of src/: each folder imports only the folders it may (see each folder's README).
 * `errors/` is a leaf every layer may use; `cli/` also imports `http/` and `grpc/` (the server builds both).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const allowed: Record<string, string[]> = {
  errors: [],
  nn: ['errors'],
  checkpoint: ['nn', 'errors'],
  training: ['nn', 'checkpoint', 'errors'],
  inference: ['nn', 'errors'],
  recalibration: ['nn', 'inference', 'errors'],
  drift: ['nn', 'inference', 'recalibration', 'errors'],
  repository: ['checkpoint', 'nn', 'errors'],
  service: [
    'nn',
    'checkpoint',
    'training',
    'inference',
    'recalibration',
    'drift',
    'repository',
    'errors',
  ],
  http: ['service', 'errors'],
  grpc: ['service', 'errors'],
  cli: ['service', 'training', 'http', 'grpc', 'errors'],
};
/** Packages a layer may not use at all (nn must run anywhere). */
const forbiddenPackages: Record<string, RegExp> = {
  nn: /^(node:|fastify|zod|pino|prom-client)/,
  checkpoint: /^(node:|fastify|pino)/,
  inference: /^(node:|fastify|zod|pino)/,
  recalibration: /^(node:|fastify|zod|pino)/,
  drift: /^(node:|fastify|zod|pino)/,
};

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const importsOf = (path: string): string[] =>
  [...readFileSync(path, 'utf8').matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'/gm)].map(
    (m) => m[1]!,
  );

describe('src/ layering', () => {
  for (const layer of Object.keys(allowed)) {
    it(`${layer}/ imports only ${allowed[layer]!.join(', ') || 'nothing outside itself'}`, () => {
      const violations: string[] = [];
      for (const file of files(join('src', layer))) {
        for (const spec of importsOf(file)) {
          if (spec.startsWith('.')) {
            const target = relative('src', resolve(dirname(file), spec)).split('/')[0]!;
            if (target !== layer && !allowed[layer]!.includes(target))
              violations.push(`${file} → ${spec}`);
          } else if (forbiddenPackages[layer]?.test(spec)) {
            violations.push(`${file} → ${spec}`);
          }
        }
      }
      expect(violations).toEqual([]);
    });
  }
});
