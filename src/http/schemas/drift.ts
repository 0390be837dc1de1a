import { z } from 'zod';
import { autoCandidateSchema, autoStatusSchema } from '../../service/index.js';

const layerDrift = z.object({
  path: z.string().meta({ description: 'The BatchNorm’s state-dict prefix (`1`, `3.body.1`)' }),
  channels: z.number().int(),
  count: z.number().int().meta({ description: 'Values per channel seen (rows × H·W)' }),
  mean_shift: z.number().meta({
    description: 'Mean over channels of |μ_live − μ_running| / √(σ²_running + ε)',
  }),
  log_std_ratio: z.number().meta({
    description: 'Mean over channels of ln(σ_live / σ_running) (σ with ε): < 0 narrower',
  }),
  score: z.number().meta({ description: 'Mean over channels of |shift| + |log std ratio|' }),
});

export const versionDriftSchema = z
  .object({
    version: z.number().int(),
    rows: z.number().int().meta({ description: 'Rows in the drift horizon' }),
    score: z.number().meta({ description: 'The model’s drift: its worst layer’s score' }),
    recommended: z.boolean().meta({
      description: 'score > threshold with at least min_rows rows: recalibration recommended',
    }),
    layers: z.array(layerDrift),
    unobserved: z.array(z.object({ path: z.string(), reason: z.string() })),
    timeline: z.array(z.object({ start: z.string(), rows: z.number().int(), score: z.number() })),
  })
  .meta({ id: 'VersionDrift' });

const { sample_rows, sample_capacity } = autoStatusSchema.shape;

/** The state as the service defines it (auto-status-schema.ts), described, the candidate's drift added. */
export const autoRecalibrationSchema = autoStatusSchema
  .extend({
    sample_rows: sample_rows.meta({
      description:
        'Rows an automatic recalibration would draw from traffic now: a uniform sample of the rows the active version served since it became active, across all WORKERS (each worker keeps a sample of its own traffic; the deciding worker draws from the union), at most sample_capacity',
    }),
    sample_capacity: sample_capacity.meta({
      description:
        'The most rows the traffic sample holds (TRAFFIC_SAMPLE_ROWS and TRAFFIC_SAMPLE_BYTES)',
    }),
    candidate: autoCandidateSchema.extend({ drift: versionDriftSchema.nullable() }).nullable(),
  })
  .meta({
    id: 'AutoRecalibration',
    description:
      'AUTO_RECALIBRATE: the traffic sample, the last automatic action and a candidate’s shadow evaluation',
  });

export const driftReportSchema = z
  .object({
    model: z.string(),
    active_version: z.number().int().nullable(),
    threshold: z.number(),
    min_rows: z.number().int(),
    sample_fraction: z.number(),
    window_ms: z.number().int(),
    windows: z.number().int(),
    active: versionDriftSchema.nullable(),
    versions: z.array(versionDriftSchema),
    auto_recalibration: autoRecalibrationSchema,
  })
  .meta({
    id: 'DriftReport',
    description:
      'Live per-BatchNorm drift of a model’s versions against their running statistics (docs/drift.md)',
    examples: [
      {
        model: 'digits',
        active_version: 1,
        threshold: 0.5,
        min_rows: 100,
        sample_fraction: 1,
        window_ms: 60000,
        windows: 10,
        active: {
          version: 1,
          rows: 200,
          score: 5.41,
          recommended: true,
          layers: [
            {
              path: '1',
              channels: 128,
              count: 200,
              mean_shift: 4.6,
              log_std_ratio: -0.81,
              score: 5.41,
            },
          ],
          unobserved: [],
          timeline: [{ start: '2026-12-01T03:00:00.000Z', rows: 200, score: 5.41 }],
        },
        versions: [],
        auto_recalibration: {
          mode: 'off',
          sample_rows: 0,
          sample_capacity: 0,
          in_progress: false,
          last_action: null,
          candidate: null,
        },
      },
    ],
  });

const histogramSchema = z.object({
  min: z.number(),
  max: z.number(),
  counts: z.array(z.number().int()),
  below: z.number().int().meta({ description: 'Values below min (left out of the bins)' }),
  above: z.number().int().meta({ description: 'Values above max' }),
});
const channelSummary = z.object({ mean: z.array(z.number()), std: z.array(z.number()) });

export const layerPicturesSchema = z
  .object({
    model: z.string(),
    version: z.number().int(),
    rows: z.number().int().meta({ description: 'Recent rows the pictures are drawn from' }),
    workers_left_out: z
      .array(
        z.object({
          worker: z.number().int().optional().meta({
            description:
              'The cluster worker id; absent when not known (the primary did not answer)',
          }),
          reason: z.string(),
        }),
      )
      .meta({
        description:
          'WORKERS > 1: worker processes whose recent rows are not in the pictures (no answer in time, another version loaded), and why; empty when all are in',
      }),
    layers: z.array(
      z.object({
        path: z.string(),
        channels: z.number().int(),
        before: histogramSchema.meta({
          description: 'The BatchNorm’s inputs, all channels pooled, before normalisation',
        }),
        after: histogramSchema.meta({
          description:
            'Its outputs γ·(x − running_mean)/√(running_var + ε) + β, pooled; a following ReLU keeps what is above 0',
        }),
        below_zero: z.number().meta({ description: 'Share of outputs below 0' }),
        running: channelSummary.meta({
          description: 'Per channel: running mean and √(running_var + ε)',
        }),
        live: channelSummary.meta({ description: 'The same of the recent rows' }),
      }),
    ),
  })
  .meta({
    id: 'LayerPictures',
    examples: [
      {
        model: 'digits',
        version: 1,
        rows: 2,
        workers_left_out: [],
        layers: [
          {
            path: '1',
            channels: 2,
            before: { min: -1, max: 1, counts: [1, 3], below: 0, above: 0 },
            after: { min: -1, max: 1, counts: [2, 2], below: 0, above: 0 },
            below_zero: 0.5,
            running: { mean: [0, 0.1], std: [1, 0.9] },
            live: { mean: [0.2, 0.1], std: [0.8, 1.1] },
          },
        ],
      },
    ],
    description:
      'Per BatchNorm of the active version, on the last rows it served: histograms before and after normalisation, running against live channel statistics',
  });
