import { tmpdir } from 'node:os';

/** Names the run's temporary root, made and removed by test/global-setup.ts. */
export const TEMP_ROOT_VARIABLE = 'NORMSERVE_TEST_TEMP_ROOT';

/** Where tests make their temporary directories: the run's root, or the OS's outside a run. */
export const testTempRoot = (): string => process.env[TEMP_ROOT_VARIABLE] ?? tmpdir();
