export { type ErrorCode, errorCatalogue } from './catalogue.js';
export { type ErrorLocation, isNormserveError, NormserveError } from './normserve-error.js';
