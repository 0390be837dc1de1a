import { type ErrorCode, errorCatalogue } from './catalogue.js';

/** One place in the input that failed validation, e.g. `instances[3][17]`. */
export interface ErrorLocation {
  path: string;
  message: string;
}

/** An expected failure with a stable code from the catalogue. */
export class NormserveError extends Error {
  override readonly name = 'NormserveError';
  readonly code: ErrorCode;
  readonly errors: readonly ErrorLocation[];
  /** Extra fields the HTTP layer copies into the problem body (e.g. a running job's id). */
  readonly extra: Readonly<Record<string, unknown>>;
  /** When retrying may succeed, in whole seconds (the HTTP layer sends it as Retry-After). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: {
      errors?: readonly ErrorLocation[];
      extra?: Record<string, unknown>;
      retryAfterSeconds?: number | undefined;
      cause?: unknown;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.errors = options.errors ?? [];
    this.extra = options.extra ?? {};
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  get status(): number {
    return errorCatalogue[this.code].status;
  }
}

export const isNormserveError = (e: unknown): e is NormserveError => e instanceof NormserveError;
