/**
 * The one catalogue of error codes. Every error normserve raises on purpose carries one of
 * these codes; the HTTP layer maps it to an RFC 9457 problem (type URI, title, status), the CLIs
 * print `<program>: <message>`. Codes are stable: clients may switch on them, so never rename one.
 */
export const errorCatalogue = {
  // Input data and requests
  INVALID_INPUT: { status: 400, title: 'Invalid input' },
  INVALID_JSON: { status: 400, title: 'Malformed JSON' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'Unsupported media type' },
  BODY_TOO_LARGE: { status: 413, title: 'Request body too large' },
  BATCH_TOO_LARGE: { status: 413, title: 'Too many rows' },
  NOT_FOUND: { status: 404, title: 'Not found' },
  METHOD_NOT_ALLOWED: { status: 405, title: 'Method not allowed' },
  MODEL_NOT_FOUND: { status: 404, title: 'Model not found' },
  VERSION_NOT_FOUND: { status: 404, title: 'Model version not found' },
  JOB_NOT_FOUND: { status: 404, title: 'Job not found' },
  JOB_ABANDONED: { status: 500, title: 'The process running the job stopped' },
  /**
   * A job the server's shutdown cut: SHUTDOWN_TIMEOUT_MS ran out before it finished (a request
   * still computing or uploading gets it as a 503 with Retry-After, like SHUTTING_DOWN).
   */
  JOB_INTERRUPTED: { status: 503, title: 'The job was interrupted by shutdown' },
  MODEL_UNAVAILABLE: { status: 503, title: 'Model has no available version' },
  UNAUTHORIZED: { status: 401, title: 'Unauthorized' },
  RATE_LIMITED: { status: 429, title: 'Too many requests' },
  RECALIBRATION_IN_PROGRESS: { status: 409, title: 'A recalibration of this model is running' },
  ACTIVE_VERSION_DELETE: { status: 409, title: 'The active version cannot be deleted' },
  /**
   * AUTO_RECALIBRATE's recalibration from a version's traffic found, under the model's lock, that
   * the version is no longer active or was already recalibrated from its traffic (by another
   * process or replica, or before a restart): never an HTTP answer, a `skipped` action.
   */
  PARENT_CHANGED: { status: 409, title: 'The version to recalibrate changed' },
  NOT_RECALIBRATABLE: { status: 422, title: 'Model has no BatchNorm layer to recalibrate' },
  NOT_EXPORTABLE: { status: 422, title: 'Model cannot be exported to ONNX' },
  TOO_FEW_SAMPLES: { status: 400, title: 'Too few samples' },
  TOO_MANY_SAMPLES: { status: 413, title: 'Too many samples' },
  SHUTTING_DOWN: { status: 503, title: 'Server is shutting down' },
  /**
   * MAX_QUEUED_REQUESTS requests already wait for the engine (TorchServe's full-queue 503), or the
   * prediction bodies held would pass MAX_BODY_BYTES_IN_FLIGHT.
   */
  OVERLOADED: { status: 503, title: 'The server is overloaded' },
  ACTIVE_RECORD_BUSY: {
    status: 503,
    title: 'The active-version record is locked by another writer',
  },
  /**
   * A worker (WORKERS > 1) asked the cluster primary something a request needs (the admin rate
   * limit's count, the metrics) and got no answer within its timeout. (The drift samples' request
   * catches it: the workers it left out are named in the answer's `workers_left_out`.)
   */
  CLUSTER_PRIMARY_TIMEOUT: { status: 503, title: 'The cluster primary did not answer in time' },
  /** A write under a model's lock found the lock no longer this process's (fencing check). */
  LOCK_LOST: { status: 503, title: 'The lock this write needed was lost' },
  REQUEST_TIMEOUT: { status: 408, title: 'Request timeout' },
  HEADERS_TOO_LARGE: { status: 431, title: 'Request headers too large' },
  EXPECTATION_FAILED: { status: 417, title: 'Expectation failed' },
  /** nginx's 499: the client closed the connection before its request was read; nothing is sent. */
  CLIENT_ABORTED: { status: 499, title: 'Client closed the request' },

  // Numerical engine
  BATCHNORM_SINGLE_VALUE: { status: 400, title: 'BatchNorm needs more than one value per channel' },
  SHAPE_MISMATCH: { status: 400, title: 'Tensor shape mismatch' },

  // Checkpoints, configuration and data files
  SAFETENSORS_INVALID: { status: 500, title: 'Invalid safetensors file' },
  MODEL_CONFIG_INVALID: { status: 500, title: 'Invalid model config.json' },
  CHECKPOINT_MISMATCH: { status: 500, title: 'Checkpoint tensors do not match config.json' },
  DATA_INVALID: { status: 400, title: 'Invalid data file' },
  TRAINING_CONFIG_INVALID: { status: 400, title: 'Invalid training configuration' },
  /** A training run whose loss or weights stopped being finite: nothing is published. */
  TRAINING_DIVERGED: { status: 422, title: 'Training diverged' },
  SERVER_CONFIG_INVALID: { status: 500, title: 'Invalid server configuration' },
  REPOSITORY_ERROR: { status: 500, title: 'Model repository error' },
  /**
   * WebDAV's 507 (RFC 4918 §11.5): ENOSPC, EDQUOT on a write of the model repository or of a
   * recalibration's temporary spill file.
   */
  STORAGE_FULL: { status: 507, title: 'The server’s storage is full' },
  /**
   * EROFS, EIO, EACCES, EPERM on a write of the model repository, or on a recalibration's
   * temporary spill file (also one that another process shortened).
   */
  STORAGE_UNAVAILABLE: { status: 503, title: 'The server’s storage cannot be used' },
  OUTPUT_WRITE_FAILED: { status: 500, title: 'Cannot write the output file' },
  LISTEN_FAILED: { status: 500, title: 'Cannot listen on the port' },

  INTERNAL: { status: 500, title: 'Internal server error' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof errorCatalogue;
