import { NormserveError, parseJsonText } from '../errors/index.js';
import {
  checkStateFits,
  finish,
  type Sequential,
  SLICE_VALUES,
  type Sliced,
  type StateDict,
  type StateSignature,
} from '../nn/index.js';
import { buildSequential } from './build-model.js';
import { isFloatDtype } from './dtype.js';
import { formatJson } from './json-format.js';
import { stateSignatures } from './layers/registry.js';
import { type MetricsFile, parseMetricsFile } from './metrics-file.js';
import { type ModelConfig, parseModelConfig } from './model-config.js';
import {
  type SafetensorsExpectation,
  type SafetensorsLayout,
  safetensorsFromLayout,
  safetensorsLayout,
  safetensorsToStateDictSliced,
  stateDictToSafetensors,
} from './safetensors.js';

/** File names inside a model version directory (docs/model-format.md). */
export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const METRICS_FILE = 'metrics.json';

/** A checkpoint in memory: the validated config, the tensors, and its metrics.json if any. */
export interface Checkpoint {
  config: ModelConfig;
  state: StateDict;
  metrics?: MetricsFile;
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

/** A config file's JSON, in the words of every JSON file normserve reads (parseJsonText). */
function parseJson(bytes: Uint8Array, source: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new NormserveError('MODEL_CONFIG_INVALID', `${source}: not valid UTF-8`);
  }
  return parseJsonText(text, source, 'MODEL_CONFIG_INVALID');
}

/**
 * Rejects NaN/Inf anywhere and negative running variances: they would poison every prediction.
 * In slices of SLICE_VALUES values (nn/slices.ts).
 */
function* checkValues(state: StateDict, source: string): Sliced<void> {
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
    const variance = name.endsWith('.running_var');
    for (let from = 0; from < data.length; from += SLICE_VALUES) {
      const to = Math.min(data.length, from + SLICE_VALUES);
      for (let i = from; i < to; i++) {
        const v = data[i]!;
        if (!Number.isFinite(v)) {
          throw new NormserveError(
            'CHECKPOINT_MISMATCH',
            `${source}: tensor "${name}" holds a non-finite value at index ${i}`,
          );
        }
        if (v < 0 && variance) {
          throw new NormserveError(
            'CHECKPOINT_MISMATCH',
            `${source}: tensor "${name}" holds a negative variance at index ${i}`,
          );
        }
      }
      yield;
    }
  }
}

/** config.json's bytes as a checked config (MODEL_CONFIG_INVALID naming `source` otherwise). */
export function parseConfigFile(bytes: Uint8Array, source: string): ModelConfig {
  return parseModelConfig(parseJson(bytes, source), source);
}

/** Prefixes a CHECKPOINT_MISMATCH from nn/ with the file it concerns. */
function naming<T>(source: string, run: () => T): T {
  try {
    return run();
  } catch (e) {
    throw named(source, e);
  }
}

/** naming for a sliced computation: every slice runs under the prefix. */
function* namingSliced<T>(source: string, work: Sliced<T>): Sliced<T> {
  try {
    return yield* work;
  } catch (e) {
    throw named(source, e);
  }
}

function named(source: string, e: unknown): unknown {
  if (e instanceof NormserveError && e.code === 'CHECKPOINT_MISMATCH')
    return new NormserveError('CHECKPOINT_MISMATCH', `${source}: ${e.message}`);
  return e;
}

/**
 * How many tensors a weights header may name beyond those its config declares and still be
 * parsed: then the first one nobody expects is refused by name (`unexpected tensor "evil"`),
 * which is what a real mistake (a file of another model, extra buffers) needs. Past it, the
 * header is refused from a count on its text before JSON.parse builds its keys (review 9: 8 MiB
 * of keys cost 1.4 s to parse and walk); 1,024 entries parse in about a millisecond.
 */
export const EXTRA_TENSORS_PARSED = 1024;

/** What the weights file of `config` may hold, known before its header is parsed. */
export function weightsExpectation(
  config: ModelConfig,
  configSource: string,
): SafetensorsExpectation {
  const declared = stateSignatures(config.layers).size;
  return {
    tensors: declared + EXTRA_TENSORS_PARSED,
    by: `${configSource} declares ${declared}`,
  };
}

/**
 * The network `config` describes (weights zero, to be loaded), once the weights file's header
 * (its checked layout) names exactly its tensors, each of its kind and shape: the rule
 * loadStateDict applies (nn's checkStateFits), applied to the header before any data is read
 * and before the network is built. The expected names, kinds and shapes come from the layer
 * records (stateSignatures: nothing allocated), so a config can only make the server allocate
 * tensors the file's header declares and its size holds (a 250,000,000-feature batchnorm1d next
 * to a 68-byte file is refused from the header). CHECKPOINT_MISMATCH naming `weightsSource` and
 * the first tensor that differs otherwise (an extra 3 GiB tensor is refused unread).
 */
export function networkForWeights(
  config: ModelConfig,
  layout: SafetensorsLayout,
  weightsSource: string,
): Sequential {
  const found = new Map<string, StateSignature>(
    layout.entries.map(({ name, tensor }) => [
      name,
      { integer: !isFloatDtype(tensor.dtype), shape: tensor.shape },
    ]),
  );
  naming(weightsSource, () => checkStateFits(stateSignatures(config.layers), found));
  return buildSequential(config.layers);
}

/**
 * Loads the weights into the network networkForWeights built from the same layout, given the
 * file's data section: values decoded, checked finite (running variances non-negative), copied
 * in; the network is left in eval mode.
 */
export function loadWeights(
  network: Sequential,
  layout: SafetensorsLayout,
  data: Uint8Array,
  weightsSource: string,
): Sequential {
  return finish(loadingWeights(network, layout, data, weightsSource));
}

/**
 * loadWeights in slices of at most SLICE_VALUES values decoded, checked or copied (nn/slices.ts):
 * run with finishYielding, a large checkpoint loads without holding the event loop.
 */
export function* loadingWeights(
  network: Sequential,
  layout: SafetensorsLayout,
  data: Uint8Array,
  weightsSource: string,
): Sliced<Sequential> {
  const state = yield* safetensorsToStateDictSliced(
    safetensorsFromLayout(layout, data),
    weightsSource,
  );
  yield* checkValues(state, weightsSource);
  yield* namingSliced(weightsSource, network.loadingStateDict(state));
  return network.eval();
}

/**
 * A checkpoint from its checked parts; a metrics.json that is not one of its formats is left out
 * (informational: parseMetricsFile).
 */
export function assembleCheckpoint(
  config: ModelConfig,
  network: Sequential,
  metricsBytes: Uint8Array | undefined,
): LoadedCheckpoint {
  const metrics = metricsBytes && parseMetricsFile(metricsBytes);
  return {
    config,
    state: network.stateDict(),
    network,
    ...(metrics === undefined ? {} : { metrics }),
  };
}

/**
 * Parses and validates a checkpoint from its file bytes, in the order a reader of files follows
 * (ModelRepository.loadVersion): the config (schema, shape chain), the safetensors rules, the
 * header's tensors against the config (names, shapes, kinds; nothing missing or extra), then the
 * values (finite). `source` names the directory in error messages.
 */
export function parseCheckpoint(
  files: { config: Uint8Array; weights: Uint8Array; metrics?: Uint8Array | undefined },
  source: string,
): LoadedCheckpoint {
  const configSource = `${source}/${CONFIG_FILE}`;
  const config = parseConfigFile(files.config, configSource);
  const weightsSource = `${source}/${WEIGHTS_FILE}`;
  const layout = safetensorsLayout(
    files.weights,
    files.weights.length,
    weightsSource,
    weightsExpectation(config, configSource),
  );
  const network = networkForWeights(config, layout, weightsSource);
  loadWeights(network, layout, files.weights.subarray(layout.dataStart), weightsSource);
  return assembleCheckpoint(config, network, files.metrics);
}
