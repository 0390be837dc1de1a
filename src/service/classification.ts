import { quote } from '../errors/index.js';
import { failInput } from './input-shape.js';
import type { AvailableVersion } from './model-registry.js';
import type { OutputName, OutputTensor } from './open-inference.js';
import { LABEL_TENSOR } from './tensor-names.js';

/*
 * Triton's classification extension (github.com/triton-inference-server/server,
 * docs/protocol/extension_classification.md): an output requested with the parameter
 * "classification": <count> comes back as a BYTES tensor of shape [batch, count] instead of its
 * values, each element "<value>:<index>:<label>", the row's highest values first. The text's
 * examples write "3.3:1" and datatype "STRING"; its code writes "3.300000:1" and "BYTES", and this
 * follows the code, as Triton's frontends compute it (src/classification.cc, AddClassResults,
 * called once per batch row by src/http_server.cc and the gRPC frontend):
 * - the indices are sorted by value, descending (std::sort with `probs[i1] > probs[i2]`);
 *   std::sort leaves equal values in no set order, here the lower index comes first (as the
 *   "label" output's argmax picks the first of equal values);
 * - the value is `std::to_string(float)`, which is printf's "%f" of the value (as a double):
 *   six decimals, rounded to nearest from the exact binary value, ties to even (glibc);
 * - a count above the number of classes gives every class: `std::min(element_cnt, req_class_cnt)`,
 *   and the shape says so ([batch, min(count, classes)]);
 * - a count of 0 or less is refused over gRPC ("invalid value for 'classification' parameter");
 *   its HTTP frontend reads 0 as no classification. Here 0 is refused on both transports: an
 *   explicit request for no classes is a mistake to name, not one to answer with raw values;
 * - only numeric outputs are classified: a BYTES output is refused ("class result not available
 *   for output due to unsupported type 'BYTES'").
 * The label is the model's class label of that index (config.labels, what the "label" output
 * names): Triton appends the label of the output's label file when the model has one.
 */

/** The output parameter that asks for classes instead of values. */
export const CLASSIFICATION_PARAMETER = 'classification';

const COUNT_MESSAGE = 'expected a positive integer: how many classes to return for the output';

/**
 * Reads a "classification" value: undefined when not set, else a positive integer (a JSON number,
 * or a gRPC int64_param read as a number); anything else is a 400 at `path`. Any size: a count
 * beyond the classes answers every class (classifiedTensor), so an int64 past 2^53, which reaches
 * here rounded, or 1e300 is as good as 11 for a model of 10 classes.
 */
export function classificationCount(value: unknown, path: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
    return failInput(path, COUNT_MESSAGE);
  return value;
}

/**
 * Checks the classification asked for on each requested output (`counts[i]`, from
 * classificationCount, for `names[i]`) against the model: only a classification model's FP32
 * outputs (probabilities, logits) have classes. `pathOf(i)` names the parameter in errors.
 */
export function checkClassifications(
  served: AvailableVersion,
  names: readonly OutputName[],
  counts: readonly (number | undefined)[],
  pathOf: (i: number) => string,
): void {
  counts.forEach((count, i) => {
    if (count === undefined) return;
    const config = served.checkpoint.config;
    if (config.task !== 'classification')
      failInput(
        pathOf(i),
        `${quote(config.name)} is a regression model: its outputs have no classes to return`,
      );
    if (names[i] === LABEL_TENSOR)
      failInput(
        pathOf(i),
        `output "${LABEL_TENSOR}" is BYTES; classification applies to an FP32 output (probabilities, logits)`,
      );
  });
}

/**
 * The classification of an FP32 output tensor [rows, classes]: a BYTES tensor
 * [rows, min(count, classes)] of "<value>:<index>:<label>", each row's highest values first.
 */
export function classifiedTensor(
  tensor: OutputTensor,
  count: number,
  labels: readonly string[],
): OutputTensor {
  if (tensor.datatype !== 'FP32') throw new Error(`classifiedTensor: ${tensor.name} is not FP32`);
  const [rows, width] = tensor.shape;
  const shown = Math.min(count, width);
  const values = tensor.values;
  const out = new Array<string>(rows * shown);
  const order = new Array<number>(width);
  for (let r = 0; r < rows; r++) {
    const base = r * width;
    for (let k = 0; k < width; k++) order[k] = k;
    order.sort((a, b) => values[base + b]! - values[base + a]! || a - b);
    for (let k = 0; k < shown; k++) {
      const index = order[k]!;
      out[r * shown + k] = `${stdToString(values[base + index]!)}:${index}:${labels[index]}`;
    }
  }
  return { name: tensor.name, datatype: 'BYTES', shape: [rows, shown], values: out };
}

/**
 * C++'s std::to_string of a float: printf's "%f" of the value as a double, six decimals rounded
 * from the exact binary value with ties to even, in plain notation however large. Number's
 * toFixed(6) rounds the exact value too, but rounds ties away from zero, writes exponents from
 * 1e21 on and drops the sign of -0: those go through the exact decimal expansion.
 */
export function stdToString(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  if (Object.is(x, -0)) return '-0.000000';
  if (Math.abs(x) < 1e21) {
    // A tie at the sixth decimal is an odd multiple of 1/128: x·10^6 = j·7812.5 (j odd). No
    // other binary value ends in exactly 5 at the seventh decimal.
    const scaled = x * 128;
    if (!(Number.isInteger(scaled) && scaled % 2 !== 0)) return x.toFixed(6);
  }
  return exactFixed6(x);
}

/** "%f" of a finite double from its exact value m·2^e: round(x·10^6), ties to even. */
export function exactFixed6(x: number): string {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & 0xfffffffffffffn;
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const exponent = biased === 0 ? -1074 : biased - 1075;
  const scaled = mantissa * 1_000_000n;
  let n: bigint;
  if (exponent >= 0) n = scaled << BigInt(exponent);
  else {
    const shift = BigInt(-exponent);
    n = scaled >> shift;
    const rest = scaled - (n << shift);
    const half = 1n << (shift - 1n);
    if (rest > half || (rest === half && (n & 1n) === 1n)) n += 1n;
  }
  const digits = n.toString().padStart(7, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -6)}.${digits.slice(-6)}`;
}
