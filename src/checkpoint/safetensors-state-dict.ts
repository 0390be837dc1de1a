import { NormserveError } from '../errors/index.js';
import type { StateDict } from '../nn/module.js';
import { finish, type Sliced } from '../nn/slices.js';
import { Tensor } from '../nn/tensor.js';
import { isFloatDtype } from './dtype.js';
import { type RawTensor, rawToBigInt, rawToFloat32Sliced } from './raw-tensor.js';
import type { SafetensorsFile } from './safetensors-reader.js';
import { writeSafetensors } from './safetensors-writer.js';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

function toRaw(name: string, value: Tensor | bigint): RawTensor {
  if (typeof value === 'bigint') {
    if (value < I64_MIN || value > I64_MAX) {
      throw new NormserveError(
        'SAFETENSORS_INVALID',
        `cannot write safetensors: integer "${name}" = ${value} does not fit in I64`,
      );
    }
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigInt64(0, value, true);
    return { dtype: 'I64', shape: [], bytes };
  }
  const bytes = new Uint8Array(value.numel * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < value.numel; i++) view.setFloat32(i * 4, value.data[i]!, true);
  return { dtype: 'F32', shape: [...value.shape], bytes };
}

/**
 * A state dict as safetensors, in the state dict's order: tensors as F32 with their shapes,
 * integers (`num_batches_tracked`) as I64 scalars of shape [], as PyTorch saves them.
 */
export function stateDictToSafetensors(
  state: StateDict,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries: [string, RawTensor][] = [];
  for (const [name, value] of state) entries.push([name, toRaw(name, value)]);
  return writeSafetensors(entries, metadata);
}

/**
 * A parsed file as a state dict, in data-offset order: float tensors (F32, F64, F16, BF16)
 * become float32 Tensors, integer scalars (I64 or I32 of shape []) become bigints; any other
 * integer tensor is SAFETENSORS_INVALID.
 */
export function safetensorsToStateDict(file: SafetensorsFile, fileName: string): StateDict {
  return finish(safetensorsToStateDictSliced(file, fileName));
}

/** safetensorsToStateDict in slices (nn/slices.ts): decoded SLICE_VALUES values at a time. */
export function* safetensorsToStateDictSliced(
  file: SafetensorsFile,
  fileName: string,
): Sliced<StateDict> {
  const state: StateDict = new Map();
  for (const [name, tensor] of file.tensors) {
    if (isFloatDtype(tensor.dtype)) {
      state.set(name, new Tensor(yield* rawToFloat32Sliced(tensor), tensor.shape));
    } else if (tensor.shape.length === 0) {
      state.set(name, rawToBigInt(tensor, name, fileName));
    } else {
      throw new NormserveError(
        'SAFETENSORS_INVALID',
        `${fileName}: tensor "${name}" is ${tensor.dtype} of shape [${tensor.shape}]; integer tensors are only supported as scalars (shape [])`,
      );
    }
  }
  return state;
}
