import { PICTURE_SAMPLE_ROWS } from '../../service/index.js';
import type { AppInstance } from '../app-types.js';
import { attributeModel } from '../attribute-model.js';
import { activeVersionErrorResponses, errorResponses, nameParams } from '../schemas/common.js';
import { driftReportSchema, layerPicturesSchema } from '../schemas/drift.js';

/**
 * `GET /v1/models/{name}/drift`: live per-BatchNorm drift and automatic recalibration state, and
 * `…/drift/layers`: the BatchNorm pictures of the last rows served. Both are drawn from the
 * prediction traffic, so they take its token (`traffic`, route-access.ts).
 */
export async function driftRoutes(app: AppInstance): Promise<void> {
  const { registry, drift } = app.deps;
  const onRequest = attributeModel(registry);
  app.get(
    '/v1/models/:name/drift',
    {
      config: { access: 'traffic' },
      onRequest,
      schema: {
        tags: ['models'],
        summary: 'Live drift of every BatchNorm layer against its running statistics',
        description:
          'Per served version, the live per-channel moments of each BatchNorm’s inputs (sampled on DRIFT_SAMPLE_FRACTION of the engine calls, over DRIFT_WINDOWS windows of DRIFT_WINDOW_MS) against the running statistics: mean standardised shift, log std ratio and their score per layer; the model score is its worst layer’s, and `recommended` is true above DRIFT_THRESHOLD with at least DRIFT_MIN_ROWS rows.',
        params: nameParams,
        response: { 200: driftReportSchema, ...errorResponses },
      },
    },
    async (request) => drift.report(request.params.name),
  );
  app.get(
    '/v1/models/:name/drift/layers',
    {
      config: { access: 'traffic' },
      onRequest,
      schema: {
        tags: ['models'],
        summary: 'Before/after-BatchNorm histograms of recent traffic, per layer',
        description: `For the active version and the last ${PICTURE_SAMPLE_ROWS} rows it served (by each worker process, all gathered, with WORKERS > 1): each BatchNorm’s inputs pooled over channels before normalisation and its outputs after (with the running statistics, where a following ReLU cuts at 0), and per channel the running against the live mean and standard deviation. Empty before traffic.`,
        params: nameParams,
        response: { 200: layerPicturesSchema, ...activeVersionErrorResponses },
      },
    },
    async (request) => drift.pictures(request.params.name),
  );
}
