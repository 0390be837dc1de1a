import { NormserveError } from '../errors/index.js';
import type { Sequential, StateDict } from '../nn/index.js';
import { networkFromCheckpoint } from './build-model.js';
import { formatJson } from './json-format.js';
import { type ModelConfig, parseModelConfig } from './model-config.js';
import { readSafetensors, safetensorsToStateDict, stateDictToSafetensors } from './safetensors.js';

/** File names inside a model version directory (docs/model-format.md). */
export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const METRICS_FILE = 'metrics.json';

/** A checkpoint in memory: the validated config, the tensors, and the training metrics if any. */
export interface Checkpoint {
  config: ModelConfig;
  state: StateDict;
  metrics?: unknown;
}

/** A checkpoint whose tensors were checked against its config, with the network built (eval mode). */
export interface LoadedCheckpoint extends Checkpoint {
  network: Sequential;
}

/** Metadata of the safetensors file; fixed, so equal tensors always give byte-identical files. */
const WEIGHTS_METADATA = { format: 'pt', normserve: 'normserve.model/v1' };

const encoder = new TextEncoder();
const json = (value: unknown): Uint8Array => encoder.encode(`${formatJson(value)}\n`);

/** The files of a model version directory, file name → bytes. */
export function serializeCheckpoint(checkpoint: Checkpoint): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  files.set(CONFIG_FILE, json(checkpoint.config));
  files.set(WEIGHTS_FILE, stateDictToSafetensors(checkpoint.state, WEIGHTS_METADATA));
  if (checkpoint.metrics !== undefined) files.set(METRICS_FILE, json(checkpoint.metrics));
  return files;
}

function parseJson(bytes: Uint8Array, source: string): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new NormserveError(
      'MODEL_CONFIG_INVALID',
      `${source}: not valid UTF-8 JSON (${(e as Error).message})`,
    );
  }
}

/** Rejects NaN/Inf anywhere and negative running variances: they would poison every prediction. */
function checkValues(state: StateDict, source: string): void {
  for (const [name, value] of state) {
    if (typeof value === 'bigint') {
      // num_batches_tracked: a count; a negative one would make momentum=None divide by ≤ 0.
      if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new NormserveError(
          'CHECKPOINT_MISMATCH',
          `${source}: tensor "${name}" must be a count in [0, 2^53), got ${value}`,
        );
      }
      continue;
    }
    const data = value.data;
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (!Number.isFinite(v)) {
        throw new NormserveError(
          'CHECKPOINT_MISMATCH',
          `${source}: tensor "${name}" holds a non-finite value at index ${i}`,
        );
      }
      if (v < 0 && name.endsWith('.running_var')) {
        throw new NormserveError(
          'CHECKPOINT_MISMATCH',
          `${source}: tensor "${name}" holds a negative variance at index ${i}`,
        );
      }
    }
  }
}

/**
 * Parses and validates a checkpoint from its file bytes: config schema and shape chain, the
 * safetensors rules, tensors against the config (names, shapes, kinds; nothing missing or extra),
 * finite values. `source` names the directory in error messages.
 */
export function parseCheckpoint(
  files: { config: Uint8Array; weights: Uint8Array; metrics?: Uint8Array | undefined },
  source: string,
): LoadedCheckpoint {
  const config = parseModelConfig(
    parseJson(files.config, `${source}/${CONFIG_FILE}`),
    `${source}/${CONFIG_FILE}`,
  );
  const weightsSource = `${source}/${WEIGHTS_FILE}`;
  const state = safetensorsToStateDict(
    readSafetensors(files.weights, weightsSource),
    weightsSource,
  );
  checkValues(state, weightsSource);
  const network = networkFromCheckpoint(config, state, weightsSource);
  let metrics: unknown;
  if (files.metrics) {
    try {
      metrics = JSON.parse(new TextDecoder().decode(files.metrics));
    } catch {
      metrics = undefined; // metrics are informational; a broken file does not fail the model
    }
  }
  return {
    config,
    state: network.stateDict(),
    network,
    ...(metrics === undefined ? {} : { metrics }),
  };
}
