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
 * the served version's were; predictions collapsed to one class — a share of the rows above
 * COLLAPSE_SHARE, and above the served version's own top share; or, for a classifier, class
 * probabilities no more confident than the served version's (a mean entropy not below its own).
 *
 * Why the entropy: statistics that fit the sample's inputs make a network more confident on them
 * (test-time adaptation minimises exactly this entropy: Wang et al., "Tent: Fully Test-Time
 * Adaptation by Entropy Minimization", ICLR 2021) — the night shift of the bundled models drops
 * it from 2.17 to 0.52 nats, pixels halved from 1.31 to 0.44. BatchNorm statistics also move
 * when only the mix of classes changes, which recalibration cannot correct (AdaBN assumes the
 * classes keep their shares: Li et al. 2016): clean digits of three classes raise the drift score
 * above the threshold, and the version recalibrated on them is less confident (0.44 → 1.10 nats)
 * and less accurate (0.95 → 0.88 on clean test rows). So is one recalibrated on inverted pixels,
 * which no BatchNorm statistics can undo (1.39 → 1.48 nats; 0.19 → 0.16 on inverted rows).
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
  const { meanEntropy: before } = active;
  const { meanEntropy: after } = candidate;
  if (before !== undefined && after !== undefined && !(after < before))
    return `it is no more confident than the served version on the ${candidate.rows} sample rows (mean prediction entropy ${after.toFixed(3)} against ${before.toFixed(3)} nats): statistics that fit shifted inputs lower it, and a drift that recalibration cannot correct — a change in the mix of classes, or a shift BatchNorm statistics cannot undo — does not`;
  return undefined;
}
