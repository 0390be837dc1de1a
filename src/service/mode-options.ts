import { NormserveError } from '../errors/index.js';
import type { RecalibrationMode } from '../recalibration/index.js';

/** The recalibration options only one mode reads, and that mode. */
const MODE_OPTIONS = [
  { key: 'priorStrength', mode: 'prior' },
  { key: 'batchSize', mode: 'running' },
] as const;

/** What a caller (the :recalibrate route, the recalibrate CLI) calls the mode and its options. */
export interface ModeOptionNames {
  mode: string;
  priorStrength: string;
  batchSize: string;
}

/**
 * An option of another mode than the one chosen would be read by nothing: refused, naming both
 * options in the caller's words, the same sentence over HTTP and in the CLI (`--batch-size needs
 * --mode running (the mode is exact, the default)`, `batch_size needs mode running (…)`).
 * `modeIsDefault`: no mode was given. `pathOf`: where the option was found, for the problem's
 * `errors[].path` (`query.batch_size` or `body.batch_size` over HTTP); its name by default.
 */
export function checkModeOptions(
  options: { mode: RecalibrationMode; priorStrength?: unknown; batchSize?: unknown },
  names: ModeOptionNames,
  modeIsDefault: boolean,
  pathOf: (key: 'priorStrength' | 'batchSize') => string = (key) => names[key],
): void {
  for (const { key, mode } of MODE_OPTIONS) {
    if (options[key] === undefined || options.mode === mode) continue;
    const message = `needs ${names.mode} ${mode} (the mode is ${options.mode}${modeIsDefault ? ', the default' : ''})`;
    throw new NormserveError('INVALID_INPUT', `${names[key]} ${message}`, {
      errors: [{ path: pathOf(key), message }],
    });
  }
}
