import { z } from 'zod';

/**
 * How many of its nearest ancestors a recalibrated version's provenance lists (`ancestors`,
 * parent first). A bound, so that a version's config.json does not grow with its generation: when
 * each provenance held its parent's whole provenance (`previous`), a config.json grew with the
 * square of the generation (indented, 243 KB at generation 151) and generation 1,352 no longer
 * fitted the 16 MiB a config.json may have. Older ancestors are found through the repository:
 * each ancestor's own config.json lists its ancestors.
 */
export const LINEAGE_ANCESTORS = 10;

/** One ancestor of a recalibrated version, as its provenance lists it. */
export interface LineageAncestor {
  version: number;
  /** Its provenance's `kind` ("recalibration"); null for a version without one (trained). */
  kind: string | null;
  mode?: string;
  created_at?: string;
}

/** What a recalibrated version's provenance records about where it came from. */
export interface Lineage {
  /** The version training produced, the first of the recalibration chain. */
  trained_version: number;
  /** The nearest LINEAGE_ANCESTORS ancestors, parent first. */
  ancestors: LineageAncestor[];
}

/**
 * A link of a recalibration chain: the bounded form (`trained_version`, `ancestors`) or the form
 * written before it, where `previous` held the parent's whole provenance.
 */
const recalibrationLinkSchema = z.looseObject({
  kind: z.literal('recalibration'),
  parent_version: z.number().int(),
  trained_version: z.number().int().optional(),
  ancestors: z.array(z.unknown()).optional(),
  // Optional: the bounded form has none (a key of z.unknown() is required in zod 4).
  previous: z.unknown().optional(),
});

const ancestorSchema = z.looseObject({
  version: z.number().int(),
  kind: z.string().nullable(),
  mode: z.string().optional(),
  created_at: z.string().optional(),
});

const entryFieldsSchema = z.looseObject({
  kind: z.string().optional(),
  mode: z.string().optional(),
  created_at: z.string().optional(),
});

/** The ancestor entry of `version`, whose config.json's provenance is `provenance`. */
function ancestorOf(version: number, provenance: unknown): LineageAncestor {
  const fields = entryFieldsSchema.safeParse(provenance).data;
  return {
    version,
    kind: fields?.kind ?? null,
    ...(fields?.mode !== undefined ? { mode: fields.mode } : {}),
    ...(fields?.created_at !== undefined ? { created_at: fields.created_at } : {}),
  };
}

/**
 * The version whose training a version's `config.training` records: the version itself, or for a
 * recalibrated one the first version of its recalibration chain (`trained_version`, or in the
 * older nested form the `parent_version` of the chain's last link, followed through `previous`).
 */
export function trainedVersion(version: number, provenance: unknown): number {
  let trained = version;
  for (
    let link = recalibrationLinkSchema.safeParse(provenance);
    link.success;
    link = recalibrationLinkSchema.safeParse(link.data.previous)
  ) {
    if (link.data.trained_version !== undefined) return link.data.trained_version;
    trained = link.data.parent_version;
  }
  return trained;
}

/**
 * The lineage of a version recalibrated from `parentVersion`, whose provenance is
 * `parentProvenance`: the parent, then the parent's own ancestors, at most LINEAGE_ANCESTORS in
 * all. A parent in the older nested form has its chain read (never copied): the result is
 * bounded whatever the parent holds.
 */
export function lineageOf(parentVersion: number, parentProvenance: unknown): Lineage {
  const ancestors = [ancestorOf(parentVersion, parentProvenance)];
  const parent = recalibrationLinkSchema.safeParse(parentProvenance);
  if (parent.success && parent.data.ancestors !== undefined) {
    for (const entry of parent.data.ancestors) {
      if (ancestors.length === LINEAGE_ANCESTORS) break;
      const parsed = ancestorSchema.safeParse(entry);
      if (!parsed.success) break;
      const { version, kind, mode, created_at } = parsed.data;
      ancestors.push({
        version,
        kind,
        ...(mode !== undefined ? { mode } : {}),
        ...(created_at !== undefined ? { created_at } : {}),
      });
    }
  } else {
    for (
      let link = parent;
      link.success && ancestors.length < LINEAGE_ANCESTORS;
      link = recalibrationLinkSchema.safeParse(link.data.previous)
    ) {
      ancestors.push(ancestorOf(link.data.parent_version, link.data.previous));
    }
  }
  return { trained_version: trainedVersion(parentVersion, parentProvenance), ancestors };
}
