/**
 * onnxruntime-web (WASM, one thread) as the independent reader of normserve's ONNX exports.
 */
import * as ort from 'onnxruntime-web';

ort.env.wasm.numThreads = 1;

export type OnnxSession = ort.InferenceSession;

export const onnxSession = (bytes: Uint8Array): Promise<OnnxSession> =>
  ort.InferenceSession.create(bytes);

/** Runs [rows, width] float32 rows through the session's single input; every output, flat. */
export async function runOnnx(
  session: OnnxSession,
  input: Float32Array,
  rows: number,
  width: number,
): Promise<Record<string, Float32Array>> {
  const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', input, [rows, width]) };
  const results = await session.run(feeds);
  const out: Record<string, Float32Array> = {};
  for (const name of session.outputNames) {
    const tensor = results[name]!;
    if (tensor.type !== 'float32') throw new Error(`output ${name} is ${tensor.type}`);
    out[name] = tensor.data as Float32Array;
  }
  return out;
}
