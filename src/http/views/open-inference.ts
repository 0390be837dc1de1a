import { versionNotFound } from '../../errors/index.js';
import { type ModelRegistry, modelMetadata } from '../../service/index.js';

/**
 * Open Inference Protocol model metadata: of the active version, listing every available version,
 * or of the version asked for, listing that one.
 */
export function oipModelMetadata(registry: ModelRegistry, name: string, version?: number) {
  if (version !== undefined)
    return modelMetadata(registry.resolve(name, version), [String(version)]);
  const served = registry.resolve(name);
  const versions = [...registry.get(name).versions.values()]
    .filter((v) => v.state === 'AVAILABLE')
    .map((v) => String(v.version));
  return modelMetadata(served, versions);
}

/**
 * Open Inference Protocol model readiness: whether the version asked for (else the active one) is
 * available; VERSION_NOT_FOUND for a version the model does not have.
 */
export function modelReadiness(registry: ModelRegistry, name: string, version?: number) {
  const model = registry.get(name);
  const v = version ?? model.active;
  const served = v === undefined ? undefined : model.versions.get(v);
  if (version !== undefined && !served) throw versionNotFound(name, version);
  return { name, ready: served?.state === 'AVAILABLE' };
}
