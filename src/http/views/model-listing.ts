import type { ModelSnapshot } from '../../service/index.js';
import { activeRecordStatus } from './model-status.js';

/** A model with its versions in ascending order, the active one marked, failures with why. */
export function listModel(model: ModelSnapshot) {
  return {
    name: model.name,
    active_version: model.active ?? null,
    state: model.active === undefined ? ('UNAVAILABLE' as const) : ('AVAILABLE' as const),
    ...activeRecordStatus(model),
    versions: [...model.versions.values()]
      .sort((a, b) => a.version - b.version)
      .map((v) => ({
        version: v.version,
        state: v.state,
        active: model.active === v.version,
        ...(v.state === 'FAILED' && v.reason ? { reason: v.reason } : {}),
      })),
  };
}
