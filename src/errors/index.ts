export { activeVersionDelete } from './active-version-delete.js';
export { type ErrorCode, errorCatalogue } from './catalogue.js';
export { closestName, didYouMean, editDistance } from './closest-name.js';
export { DECIMAL_TEXT } from './decimal-text.js';
export { errnoOf, errnoWords } from './errno.js';
export {
  counted,
  describeInput,
  describeRange,
  expecting,
  type IssueFacts,
  inNumberRange,
  issueMessage,
  type NumberRange,
  rangeMessage,
  safeParseWorded,
} from './issue-message.js';
export {
  describeLocations,
  fileLine,
  formatPath,
  inFile,
  issuesToLocations,
} from './issue-path.js';
export {
  type DuplicateKey,
  findDuplicateKey,
  repeatedKey,
  showKeyPath,
  stringEnd,
  type TextPosition,
  textPosition,
} from './json-duplicate-keys.js';
export { parseJsonText } from './json-text.js';
export { type ErrorLocation, isNormserveError, NormserveError } from './normserve-error.js';
export { versionNotFound } from './not-found.js';
export { ECHO_CHARS, echoJson, printable, quote, quoteList } from './quote.js';
export { requestNotArrived } from './request-timeout.js';
