/** The safetensors element types normserve reads and writes. */
export const SUPPORTED_DTYPES = ['F32', 'F64', 'F16', 'BF16', 'I64', 'I32'] as const;
export type SafetensorsDtype = (typeof SUPPORTED_DTYPES)[number];

/** Bytes per element of each supported dtype. */
export const DTYPE_SIZES: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
};

/**
 * Dtypes the safetensors format defines that normserve does not support; a file using one gets
 * "unsupported dtype" rather than "unknown dtype".
 */
const UNSUPPORTED_KNOWN_DTYPES: ReadonlySet<string> = new Set([
  'BOOL',
  'U8',
  'I8',
  'U16',
  'I16',
  'U32',
  'U64',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'F8_E5M2',
  'F8_E4M3',
  'F8_E8M0',
  'C64',
]);

export function isSupportedDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.hasOwn(DTYPE_SIZES, value);
}

export function isKnownUnsupportedDtype(value: string): boolean {
  return UNSUPPORTED_KNOWN_DTYPES.has(value);
}

export function isFloatDtype(dtype: SafetensorsDtype): boolean {
  return dtype === 'F32' || dtype === 'F64' || dtype === 'F16' || dtype === 'BF16';
}
