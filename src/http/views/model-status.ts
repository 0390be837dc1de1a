import { versionNotFound } from '../../errors/index.js';
import type { DriftService, ModelSnapshot } from '../../service/index.js';

function versionStatus(model: ModelSnapshot, only?: number) {
  return [...model.versions.values()]
    .filter((v) => only === undefined || v.version === only)
    .sort((a, b) => b.version - a.version)
    .map((v) => ({
      version: String(v.version),
      state: v.state,
      status:
        v.state === 'AVAILABLE'
          ? { error_code: 'OK', error_message: '' }
          : {
              error_code: 'UNKNOWN',
              error_message: v.reason,
              ...(v.reasonCode !== undefined ? { code: v.reasonCode } : {}),
            },
      active: model.active === v.version,
    }));
}

/** The problem of a model's active-version record, as the optional status field. */
export const activeRecordStatus = (model: ModelSnapshot) =>
  model.activeProblem !== undefined ? { active_record_error: model.activeProblem } : {};

/**
 * TF Serving's GetModelStatus of every version, with the normserve extensions: the active
 * record's problem, and the automatic recalibration's state when `withAutoRecalibration`
 * (AUTO_RECALIBRATE on and no API_TOKEN: the route says why).
 */
export function modelStatus(
  model: ModelSnapshot,
  drift: DriftService,
  withAutoRecalibration: boolean,
) {
  return {
    model_version_status: versionStatus(model),
    ...activeRecordStatus(model),
    ...(withAutoRecalibration ? { auto_recalibration: drift.autoStatus(model.name) } : {}),
  };
}

/** GetModelStatus of one version (VERSION_NOT_FOUND when the model has no such version). */
export function oneVersionStatus(model: ModelSnapshot, version: number) {
  const status = versionStatus(model, version);
  if (status.length === 0) {
    throw versionNotFound(model.name, version);
  }
  return { model_version_status: status, ...activeRecordStatus(model) };
}
