/**
 * normserve as a library: `import { loadModel } from 'normserve'` (README, "Library").
 */
export type { EngineName } from './inference/index.js';
export { type LoadedModel, type LoadModelOptions, loadModel } from './service/index.js';
