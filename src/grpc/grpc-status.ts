import { status } from '@grpc/grpc-js';
import { type ErrorCode, errorCatalogue } from '../errors/index.js';

/**
 * The gRPC status of a catalogue error, from its HTTP status (the mapping of
 * https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.txt read backwards, plus
 * the obvious ones): client mistakes stay client-side codes (INVALID_ARGUMENT, NOT_FOUND, …),
 * never INTERNAL or UNKNOWN.
 */
export function grpcStatusOf(code: ErrorCode): status {
  const http: number = errorCatalogue[code].status;
  switch (http) {
    case 400:
    case 413: // Triton answers a too large batch with INVALID_ARGUMENT too
    case 415:
    case 422:
      return status.INVALID_ARGUMENT;
    case 401:
      return status.UNAUTHENTICATED;
    case 403:
      return status.PERMISSION_DENIED;
    case 404:
      return status.NOT_FOUND;
    case 409:
      return status.ABORTED;
    case 429:
      return status.RESOURCE_EXHAUSTED;
    case 499: // CLIENT_ABORTED, nginx's "client closed request": the mapping's CANCELLED
      return status.CANCELLED;
    case 503:
      return status.UNAVAILABLE;
    case 504:
      return status.DEADLINE_EXCEEDED;
    default:
      return http >= 400 && http < 500 ? status.FAILED_PRECONDITION : status.INTERNAL;
  }
}
