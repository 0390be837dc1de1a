/**
 * Share of a traffic sample's rows one class may take in a recalibrated version's predictions
 * before AUTO_RECALIBRATE=promote refuses to serve it, unless the served version already
 * predicted that much of the sample as one class (docs/drift.md, "Outlying rows"): statistics
 * poisoned by a few extreme rows push every row to the same side of the following ReLUs and the
 * network answers one class for everything (the reviewer's attack: one class, accuracy 0.10 on
 * ten classes), which traffic of several classes does not do.
 */
export const COLLAPSE_SHARE = 0.9;

/**
 * How a version classified a sample: rows per predicted class, rows whose outputs overflowed,
 * and the mean entropy of its class probabilities.
 */
export interface SamplePredictions {
  rows: number;
  /** Rows per predicted class index. */
  counts: readonly number[];
  /** Rows whose outputs were not all finite. */
  nonFinite: number;
  /**
   * Mean prediction entropy (nats) over the rows with finite outputs; undefined for a
   * regression model (no class probabilities) or when no row is finite.
   */
  meanEntropy?: number | undefined;
}

/** The largest share of the rows predicted as one class (0 for no rows). */
export function topClassShare(p: SamplePredictions): number {
  return p.rows === 0 ? 0 : Math.max(0, ...p.counts) / p.rows;
}

/**
 * Why a recalibrated `candidate` must not be served in place of `active`, judged on the same
 * sample rows, or undefined when nothing speaks against it: outputs that are not finite where
 * the served version's were, or predictions collapsed to one class — a share of the rows above
 * COLLAPSE_SHARE, and above the served version's own top share.
 *
 * Not a refusal: the mean prediction entropy (SamplePredictions.meanEntropy, reported with the
 * outcome: entropyChange). A rule "serve only if more confident" was tried and backed out
 * (docs/drift.md, "The promotion guard"): it refused versions recalibrated on a change of the
 * class mix, which BatchNorm statistics cannot correct, but also good recalibrations whenever the
 * served version is confidently wrong under the shift — pixels +20 on `digits`, served 0.10 and
 * recalibrated 0.94, went from 0.196 to 0.359 nats.
 */
export function promotionRefusal(
  active: SamplePredictions,
  candidate: SamplePredictions,
): string | undefined {
  if (candidate.nonFinite > active.nonFinite)
    return `its outputs are not finite on ${candidate.nonFinite} of ${candidate.rows} sample rows (the served version's on ${active.nonFinite})`;
  const share = topClassShare(candidate);
  const served = topClassShare(active);
  if (share > COLLAPSE_SHARE && share > served)
    return `it predicts one class for ${(100 * share).toFixed(1)} % of ${candidate.rows} sample rows (the served version for ${(100 * served).toFixed(1)} %; at most ${100 * COLLAPSE_SHARE} % unless the served version does too)`;
  return undefined;
}

/**
 * The two versions' mean prediction entropy on the sample, as the outcome reports it
 * (`mean prediction entropy on the 512 sample rows 2.169 → 0.516 nats`), or undefined for a
 * regression model.
 */
export function entropyChange(
  active: SamplePredictions,
  candidate: SamplePredictions,
): string | undefined {
  const { meanEntropy: before } = active;
  const { meanEntropy: after } = candidate;
  if (before === undefined || after === undefined) return undefined;
  return `mean prediction entropy on the ${candidate.rows} sample rows ${before.toFixed(3)} → ${after.toFixed(3)} nats`;
}
