/**
 * The models this checkout bundles (the git-tracked models/<name>/<version>) and copies of exactly
 * them. `npm run train` writes into the same models/ by default (README, Training: `npm start`
 * serves what you train), and a model directory serves its highest version, so a test or bench that
 * copied or loaded `models/digits` would pick up a user's trained versions instead of the bundled
 * numbers it pins. Tests and benches name the bundled version directories below instead;
 * test/acceptance/bundled-models-list.test.ts checks this list against `git ls-files models`.
 */
import { cpSync } from 'node:fs';
import { join } from 'node:path';

/** The checkout's model repository (relative to the checkout: tests and benches run from its root). */
export const BUNDLED_REPOSITORY = 'models';

/** Bundled model → its one committed version. */
export const BUNDLED_MODELS = { digits: '1', 'digits-cnn': '1' } as const;

export type BundledModel = keyof typeof BUNDLED_MODELS;

export const BUNDLED_MODEL_NAMES = Object.keys(BUNDLED_MODELS) as BundledModel[];

export function isBundledModel(name: string): name is BundledModel {
  return Object.hasOwn(BUNDLED_MODELS, name);
}

/** `models/<name>/<version>` of a bundled model, in `checkout` (default: the current directory). */
export function bundledVersionDir(name: BundledModel, checkout = '.'): string {
  return join(checkout, BUNDLED_REPOSITORY, name, BUNDLED_MODELS[name]);
}

export interface CopyBundledOptions {
  /** Model name in the target repository (default: the bundled name). */
  as?: string;
  /** Version directory in the target repository (default: the bundled version). */
  version?: string | number;
  /** The checkout to copy from (default: the current directory). */
  checkout?: string;
}

/**
 * Copies the bundled version of `name` into `repository` as `<repository>/<as>/<version>` (that
 * one version only) and returns the version directory it made.
 */
export function copyBundledModel(
  name: BundledModel,
  repository: string,
  options: CopyBundledOptions = {},
): string {
  const target = join(
    repository,
    options.as ?? name,
    String(options.version ?? BUNDLED_MODELS[name]),
  );
  cpSync(bundledVersionDir(name, options.checkout), target, { recursive: true });
  return target;
}

/** Copies every bundled model (its bundled version, nothing else) into `repository`; returns it. */
export function copyBundledRepository(repository: string, checkout = '.'): string {
  for (const name of BUNDLED_MODEL_NAMES) copyBundledModel(name, repository, { checkout });
  return repository;
}
