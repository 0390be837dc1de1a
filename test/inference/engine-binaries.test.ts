/**
 * The engine module's prebuilt bytes (src/inference/wasm/engine-binaries.ts, generated) are
 * exactly what assembling the engine's text gives now, for every variant, and they are what
 * engineModule compiles: a change to the WAT without `npm run generate:engine` fails here.
 */
import { describe, expect, it } from 'vitest';
import { ENGINE_BINARIES } from '../../src/inference/wasm/engine-binaries.js';
import {
  assembleEngine,
  ENGINE_VARIANTS,
  engineVariantKey,
} from '../../src/inference/wasm/engine-module.js';

describe('prebuilt engine binaries', () => {
  it('one per variant, nothing else', () => {
    expect(Object.keys(ENGINE_BINARIES).sort()).toEqual(
      ENGINE_VARIANTS.map((v) => engineVariantKey(v.relaxed, v.parts)).sort(),
    );
  });

  for (const { relaxed, parts } of ENGINE_VARIANTS) {
    const key = engineVariantKey(relaxed, parts);
    it(`${key}: equal to assembling the text now (else run npm run generate:engine)`, () => {
      const prebuilt = Buffer.from(ENGINE_BINARIES[key]!, 'base64');
      const assembled = Buffer.from(assembleEngine(relaxed, parts));
      expect(prebuilt.equals(assembled)).toBe(true);
    });
  }
});
