/**
 * The safetensors format (https://github.com/huggingface/safetensors): bytes in, bytes out.
 * Everything is little-endian whatever the platform.
 */
export {
  DTYPE_SIZES,
  type SafetensorsDtype,
} from './dtype.js';
export { type RawTensor, rawToBigInt, rawToFloat32, rawToFloat32Sliced } from './raw-tensor.js';
export {
  MAX_HEADER_BYTES,
  MAX_METADATA_CHARS,
  MAX_METADATA_ENTRIES,
  readSafetensors,
  type SafetensorsExpectation,
  type SafetensorsFile,
  type SafetensorsLayout,
  safetensorsFromLayout,
  safetensorsHeaderLength,
  safetensorsLayout,
} from './safetensors-reader.js';
export {
  safetensorsToStateDict,
  safetensorsToStateDictSliced,
  stateDictToSafetensors,
} from './safetensors-state-dict.js';
export { writeSafetensors } from './safetensors-writer.js';
