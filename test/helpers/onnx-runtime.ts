/**
 * onnxruntime-web (WASM, one thread) as the independent reader of normserve's ONNX exports.
 */
import * as ort from 'onnxruntime-web';

ort.env.wasm.numThreads = 1;

export type OnnxSession = ort.InferenceSession;

export const onnxSession = (bytes: Uint8Array): Promise<OnnxSession> =>
  ort.InferenceSession.create(bytes);

/**
 * Runs `rows` samples through the session's single input — [rows, width], or [rows, ...shape] for
 * a sample shape such as [C, H, W] — and returns every output, flat.
 */
export async function runOnnx(
  session: OnnxSession,
  input: Float32Array,
  rows: number,
  sample: number | readonly number[],
): Promise<Record<string, Float32Array>> {
  const dims = [rows, ...(typeof sample === 'number' ? [sample] : sample)];
  const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', input, dims) };
  const results = await session.run(feeds);
  const out: Record<string, Float32Array> = {};
  for (const name of session.outputNames) {
    const tensor = results[name]!;
    if (tensor.type !== 'float32') throw new Error(`output ${name} is ${tensor.type}`);
    out[name] = tensor.data as Float32Array;
  }
  return out;
}
