import { bytesTensor, failInput, float32Bytes, type OutputTensor } from '../service/index.js';

/**
 * The Open Inference Protocol's binary tensor data extension over HTTP, as Triton documents it
 * (docs/protocol/extension_binary_data.md): the body is a JSON header of
 * `Inference-Header-Content-Length` bytes followed by the raw tensors in the order of the
 * header's inputs, each `parameters.binary_data_size` bytes; outputs with
 * `parameters.binary_data: true` (or every output, with the request parameter
 * `binary_data_output: true`) come back the same way.
 */
export const OCTET_STREAM = 'application/octet-stream';
export const HEADER_LENGTH = 'inference-header-content-length';
const HEADER_LENGTH_NAME = 'Inference-Header-Content-Length';

/** Splits a binary body into its JSON header text and the bytes after it. */
export function splitInferBody(
  body: Buffer,
  headerLength: string | string[] | undefined,
): { json: string; binary: Buffer } {
  if (headerLength === undefined)
    return { json: body.toString('utf8'), binary: body.subarray(0, 0) };
  const value = Array.isArray(headerLength) ? headerLength.join(',') : headerLength;
  if (!/^[0-9]{1,15}$/.test(value.trim())) {
    failInput(
      `headers.${HEADER_LENGTH}`,
      `expected the byte length of the JSON header, got "${value.slice(0, 40)}"`,
    );
  }
  const length = Number(value.trim());
  if (length > body.length) {
    failInput(
      `headers.${HEADER_LENGTH}`,
      `the JSON header is said to be ${length} bytes but the body has ${body.length}`,
    );
  }
  return { json: body.toString('utf8', 0, length), binary: body.subarray(length) };
}

/** A parameter that must be a boolean when given (`binary_data`, `binary_data_output`). */
export function booleanParameter(
  parameters: Record<string, unknown> | undefined,
  key: string,
  path: string,
): boolean | undefined {
  const value = parameters?.[key];
  if (value === undefined || typeof value === 'boolean') return value;
  return failInput(`${path}.${key}`, 'expected a boolean');
}

/** `binary_data_size` of an input: a byte count when given. */
export function binaryDataSize(
  parameters: Record<string, unknown> | undefined,
  path: string,
): number | undefined {
  const value = parameters?.binary_data_size;
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    return failInput(`${path}.binary_data_size`, 'expected a byte count (an integer ≥ 0)');
  return value;
}

/** The bytes of an output tensor. */
export function tensorBytes(tensor: OutputTensor): Buffer {
  return tensor.datatype === 'FP32' ? float32Bytes(tensor.values) : bytesTensor(tensor.values);
}

/** A binary response body: the JSON header, then the tensors' bytes. */
export function binaryBody(
  json: string,
  parts: readonly Buffer[],
): { body: Buffer; headerLength: number } {
  const header = Buffer.from(json, 'utf8');
  return { body: Buffer.concat([header, ...parts]), headerLength: header.length };
}

/** The inputs' binary_data_size must account for exactly the bytes after the header. */
export function checkBinaryConsumed(used: number, available: number): void {
  if (used !== available) {
    failInput(
      'inputs',
      `the binary_data_size values add up to ${used} bytes, but ${available} bytes follow the JSON header`,
    );
  }
}

export { HEADER_LENGTH_NAME };
