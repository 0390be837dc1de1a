/**
 * Paths of the Triton and KServe extensions of the Open Inference Protocol, and of TF Serving's
 * REST API, that normserve does not serve, each with what to use instead: tritonclient's
 * get_model_config and get_inference_statistics met a bare "no route" (newcomer review of
 * 2026-12-04), as did TF Serving's version labels and :classify (h257). Still a 404 (what Triton
 * answers for an extension it was built without), and the same list as README.md's "Not served".
 */
const UNSERVED: readonly { path: RegExp; what: string; instead: string; plural?: true }[] = [
  {
    path: /^\/v2\/models\/[^/]+(\/versions\/[^/]+)?\/config$/,
    what: "Triton's model configuration extension",
    instead:
      'GET /v2/models/{name} has the input and output tensors, GET /v1/models/{name}/metadata the whole config.json',
  },
  {
    path: /^\/v2\/models\/[^/]+(\/versions\/[^/]+)?\/stats$/,
    what: "Triton's statistics extension",
    instead: "GET /metrics has each model's request counts and latencies (Prometheus)",
  },
  {
    path: /^\/v2\/repository(\/|$)/,
    what: "Triton's model repository extension",
    instead:
      'GET /v1/models lists the models; the repository is scanned every MODEL_POLL_INTERVAL_MS and on SIGHUP, and POST /v1/models/{name}/versions/{version}:activate chooses the version served',
  },
  {
    path: /^\/v2\/(trace|logging)(\/|$)/,
    what: "Triton's trace and logging extensions",
    plural: true,
    instead: 'LOG_LEVEL sets the log level; a traceparent header is logged with its request',
  },
  {
    path: /^\/v1\/models\/[^/]+\/labels(\/|$)/,
    what: "TF Serving's version labels",
    plural: true,
    instead:
      '/v1/models/{name}/versions/{version} names a version, /v1/models/{name} serves the active one, and POST /v1/models/{name}/versions/{version}:activate chooses it',
  },
  {
    path: /^\/v1\/models\/[^/]+(\/versions\/[^/]+)?:(classify|regress)$/,
    what: "TF Serving's Classify and Regress API (tf.Example inputs)",
    instead:
      ':predict answers probabilities and labels (regression models: predictions), and POST /v2/models/{name}/infer the top classes with the classification extension',
  },
  {
    path: /^\/v2\/(system|cuda)sharedmemory(\/|$)/,
    what: "Triton's shared-memory extensions",
    plural: true,
    instead: 'send tensors in the request, as JSON or with the binary tensor extension',
  },
];

/**
 * For a path of an extension not served: which one, and what to use instead. The path is matched
 * with `%3A` read as the colon too, as the router reads it (`/v1/models/digits%3Aclassify` is
 * `…:classify`).
 */
export function unservedExtension(path: string): string | undefined {
  // Only the colon, as the router reads it before a verb (`%2F` is no path separator to it).
  const decoded = path.replace(/%3a/gi, ':');
  const found = UNSERVED.find((u) => u.path.test(path) || u.path.test(decoded));
  return found && `${found.what} ${found.plural ? 'are' : 'is'} not served; ${found.instead}`;
}
