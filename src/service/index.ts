export { loadModelDirectory } from '../repository/index.js';
export { publishCheckpoint } from './publish-checkpoint.js';
