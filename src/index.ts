/**
 * normserve as a library: `import { loadModel } from 'normserve'` (README, "Library"). Only the
 * library's own types are reachable from here, so a consumer's type check sees nothing else.
 */
export type { EngineName } from './inference/engine-name.js';
export { type LoadedModel, type LoadModelOptions, loadModel } from './service/load-model.js';
