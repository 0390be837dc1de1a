import type { DriftContext } from './drift-context.js';
import { decodeSampleRows, encodeSampleRows, type TrafficSampleMessage } from './drift-share.js';
import { type LayerPicture, layerPicturesInTurns } from './layer-pictures.js';
import type { AvailableVersion } from './model-registry.js';
import { type LeftOut, sampleMismatch } from './peer-samples.js';

/** Rows of recent traffic kept per model for the before/after-BatchNorm pictures. */
export const PICTURE_SAMPLE_ROWS = 256;

/**
 * WORKERS > 1: how long the other workers' recent rows, once gathered for GET …/drift/layers, are
 * drawn from again. A gathering moves up to PICTURE_SAMPLE_ROWS rows per worker through the
 * primary (base64, about 1 MB per worker for a 784-wide input, relayed twice and parsed), and the
 * dashboard asks every second per open page (POLL_MS in dashboard/dashboard.js): one second keeps
 * any number of pages and concurrent calls at one gathering a second per model, while the
 * pictures stay at most a second behind the others' traffic (the answering worker's own rows are
 * read at every call).
 */
export const PEER_RECENT_REUSE_MS = 1_000;

/** The other workers' recent rows of a version as gathered (samples that fit) and who is missing. */
interface PeerRecent {
  samples: TrafficSampleMessage[];
  leftOut: LeftOut[];
}

/** The pictures of a model's active version on its recent traffic (GET …/drift/layers). */
export interface LayerPictures {
  model: string;
  version: number;
  /**
   * Recent rows the pictures were drawn from: the last PICTURE_SAMPLE_ROWS served, by each
   * process of the server (WORKERS > 1).
   */
  rows: number;
  /**
   * WORKERS > 1: the workers whose rows are not in the pictures (no answer in time, another
   * version loaded, the primary silent), and why; empty when every worker's rows are in.
   */
  workers_left_out: LeftOut[];
  layers: LayerPicture[];
}

/** Pictures of a version's recent rows (before usableRows), drawn or being drawn. */
interface DrawnPictures {
  input: Float32Array;
  count: number;
  /** The rows of `input` the pictures show (usableRows), and the pictures. */
  drawn: Promise<{ rows: number; layers: LayerPicture[] }>;
}

/**
 * The before/after-BatchNorm pictures of a model's recent traffic (GET …/drift/layers): this
 * process's recent rows and, WORKERS > 1, the other workers', gathered through the primary.
 */
export class RecentPictures {
  /**
   * The other workers' recent rows per model: a gathering in flight (`doneAt` undefined) is
   * shared by every call that comes meanwhile, a finished one reused for PEER_RECENT_REUSE_MS.
   */
  private readonly peerRecent = new Map<
    string,
    { version: number; doneAt: number | undefined; gathered: Promise<PeerRecent> }
  >();
  /** Per version, the last pictures drawn or being drawn (drawPictures) and their rows. */
  private readonly lastPictures = new WeakMap<AvailableVersion, DrawnPictures>();

  constructor(private readonly context: DriftContext) {}

  /**
   * The seed's picture per BatchNorm of the active version, on the last rows it served: the
   * layer's inputs before and after normalisation, running against live channel statistics.
   * WORKERS > 1: on the last rows every process served, gathered from the others through the
   * primary, so any worker draws the same pictures. The pictures are merged by their rows, not by
   * their fields: the histograms' bins come from the rows' own range (robustRange) and differ
   * between workers, so two workers' histograms cannot be added exactly; their rows can.
   */
  async pictures(name: string): Promise<LayerPictures> {
    const served = this.context.requireRegistry().resolve(name);
    const width = served.compiled.inputWidth;
    const peers = this.context.collectPeers()
      ? await this.peerRecentRows(name, served.version, width)
      : { samples: [], leftOut: [] };
    // This process's rows as they are now (after the wait), whatever the others' age.
    const own = this.recentSample(name);
    const samples = own.version === served.version ? [own, ...peers.samples] : peers.samples;
    const recent = recentRowsOf(samples, served.version, width);
    const drawn = await this.drawPictures(served, recent.rows, recent.count);
    return {
      model: name,
      version: served.version,
      rows: drawn.rows,
      workers_left_out: peers.leftOut,
      layers: drawn.layers,
    };
  }

  /**
   * The pictures of `input` ([count, inputWidth], the recent rows as gathered) on a version, drawn
   * again only when the rows changed: a version never changes once published and layerPictures
   * (like usableRows) is a function of the version and the rows, so the same rows, byte for byte
   * in the same order, give the same pictures. While no new traffic arrives, or for a second
   * dashboard between two requests, the last ones are answered again, and calls that come while
   * they are drawn wait for that drawing. The rows are checked and the pictures drawn over several
   * turns of the event loop (usableRowsInTurns, layerPicturesInTurns), each a few milliseconds of
   * the work (docs/drift.md, Pictures).
   */
  private drawPictures(
    served: AvailableVersion,
    input: Float32Array,
    count: number,
  ): Promise<{ rows: number; layers: LayerPicture[] }> {
    const last = this.lastPictures.get(served);
    if (last !== undefined && last.count === count && sameBytes(last.input, input))
      return last.drawn;
    const source = {
      network: served.checkpoint.network,
      inputTransform: served.checkpoint.config.input_transform,
      inputShape: served.compiled.inputShape,
      plan: served.compiled.plan,
      engine: served.compiled.executor.engine,
    };
    const draw = async () => {
      const usable = await this.context.usable.usableRowsInTurns(served, input, count);
      const layers =
        usable.count === 0 ? [] : await layerPicturesInTurns(source, usable.rows, usable.count);
      return { rows: usable.count, layers };
    };
    const entry: DrawnPictures = {
      input,
      count,
      drawn: draw().catch((error: unknown) => {
        // A failed drawing is not answered again: the next call draws anew.
        if (this.lastPictures.get(served) === entry) this.lastPictures.delete(served);
        throw error;
      }),
    };
    this.lastPictures.set(served, entry);
    return entry.drawn;
  }

  /** The other workers' recent rows: one gathering shared and reused (PEER_RECENT_REUSE_MS). */
  private peerRecentRows(name: string, version: number, width: number): Promise<PeerRecent> {
    const now = this.context.now();
    // Gatherings are kept for their reuse only (up to 256 rows per worker each): the stale ones
    // of every model go, not only this one's.
    for (const [model, gathering] of this.peerRecent)
      if (gathering.doneAt !== undefined && now - gathering.doneAt >= PEER_RECENT_REUSE_MS)
        this.peerRecent.delete(model);
    const known = this.peerRecent.get(name);
    if (known?.version === version) return known.gathered;
    const entry = {
      version,
      doneAt: undefined as number | undefined,
      gathered: this.gatherPeerRecent(name, version, width).finally(() => {
        entry.doneAt = this.context.now();
      }),
    };
    this.peerRecent.set(name, entry);
    return entry.gathered;
  }

  /**
   * Asks the other workers for their recent rows; never fails: a worker that does not answer in
   * time, or answers rows of another version, is left out (and named), and a primary that does
   * not answer leaves out all that had not answered yet (the rows that came are kept).
   */
  private async gatherPeerRecent(
    name: string,
    version: number,
    width: number,
  ): Promise<PeerRecent> {
    const samples: TrafficSampleMessage[] = [];
    const leftOut: LeftOut[] = [];
    try {
      const done = await this.context.collectPeers()!(
        name,
        version,
        (worker, m) => {
          if (m.size === 0) return; // answered: no rows yet
          const mismatch = sampleMismatch(m, version, width);
          if (mismatch === undefined) samples.push(m);
          else leftOut.push({ worker, reason: mismatch });
        },
        'recent',
      );
      leftOut.push(...done.leftOut);
    } catch (e) {
      leftOut.push({
        reason: `the others' rows did not all come: ${e instanceof Error ? e.message : String(e)}`,
      });
    }
    return { samples, leftOut };
  }

  /** This process's recent rows of a model's active version (for the pictures), as a sample. */
  recentSample(model: string): TrafficSampleMessage {
    const state = this.context.models.get(model);
    const recent = state?.recent;
    if (!recent || state.activeVersion === undefined)
      return { model, version: null, width: recent?.width ?? 1, size: 0, seen: 0, rows: '' };
    return {
      model,
      version: state.activeVersion,
      width: recent.width,
      size: recent.size,
      seen: recent.size,
      rows: encodeSampleRows(recent.rows()),
    };
  }
}

/** Whether two arrays hold the same bytes (−0 ≠ +0 and NaN payloads told apart: the rows as sent). */
function sameBytes(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/**
 * The rows of several processes' recent-row samples of one version, one after the other (the
 * pictures' input): samples of another version or width (a process that has not loaded the new
 * version yet) are left out.
 */
export function recentRowsOf(
  samples: readonly TrafficSampleMessage[],
  version: number,
  width: number,
): { rows: Float32Array; count: number } {
  const parts = samples.filter((s) => s.version === version && s.width === width && s.size > 0);
  const count = parts.reduce((n, s) => n + s.size, 0);
  const rows = new Float32Array(count * width);
  let at = 0;
  for (const part of parts) {
    rows.set(decodeSampleRows(part), at);
    at += part.size * width;
  }
  return { rows, count };
}
