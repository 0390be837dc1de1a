import type { EngineName } from '../../src/inference/index.js';

/**
 * The engine the suite's models run on: the default (wasm) unless ENGINE=js, which the js-engine
 * project of vitest.config.ts sets to run the inference, HTTP and recalibration tests again on
 * the JavaScript reference. Child processes (CLI, servers) inherit ENGINE from the environment.
 */
export const TEST_ENGINE: EngineName = process.env.ENGINE === 'js' ? 'js' : 'wasm';
