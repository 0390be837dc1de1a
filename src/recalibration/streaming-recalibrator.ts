import { NormserveError } from '../errors/index.js';
import { type FeatureTransform, numelOf, type Sequential } from '../nn/index.js';
import { type BatchNormLayer, minimumRows, singleValueLayer } from './batch-norm-layers.js';
import type { PlanSource } from './layer-input-statistics.js';
import { layerShift } from './layer-shift.js';
import { NetworkState } from './network-state.js';
import type { RecalibrationProgress, ResolvedOptions } from './recalibration-options.js';
import type { RecalibrationResult, Recalibrator } from './recalibrator.js';
import { checkCapacity, countRows, wholeRows } from './row-validation.js';

/** What a mode adds to the result (`running`: batches and skipped rows). */
export type ModeResult = Pick<RecalibrationResult, 'batches' | 'skipped'>;

/**
 * The part every mode shares: validating pushed chunks, handing them on slice by slice (at most
 * `chunkRows` rows at a time, pausing between slices), progress, the one-shot finish() that
 * restores the network on failure, and the shift report. Rows stay raw: the input transform is
 * folded into the plans that read the BatchNorm inputs (LayerInputStatistics).
 */
export abstract class StreamingRecalibrator implements Recalibrator {
  protected readonly state: NetworkState;
  /** Values per row: the product of inputShape. */
  protected readonly inputWidth: number;
  private received = 0;
  private busy = false;
  private closed = false;

  /** What the modes compile their statistics plans from. */
  protected readonly source: PlanSource;

  /**
   * Per BatchNorm, the samples' own unbiased variance where the stored running_var is not it
   * (`prior` blends in the model's): checkVariance asks whether the data varies, not the blend.
   */
  protected readonly dataVars: Float64Array[] = [];

  constructor(
    protected readonly network: Sequential,
    inputTransform: FeatureTransform | undefined,
    /** The shape of one sample ([F] or [C, H, W]); rows arrive flat, row-major. */
    protected readonly inputShape: readonly number[],
    protected readonly options: ResolvedOptions,
    protected readonly layers: readonly BatchNormLayer[],
    batchRows: number,
  ) {
    this.inputWidth = numelOf(inputShape);
    this.state = new NetworkState(network, layers);
    this.source = { network, inputTransform, inputShape, engine: options.engine, batchRows };
  }

  get rows(): number {
    return this.received;
  }

  get minimumRows(): number {
    return minimumRows(this.layers);
  }

  /**
   * The source with no helper thread: the statistics plans beyond the one that overlaps the
   * upload run on the calling thread, since a helper costs a thread start per executor (one per
   * BatchNorm) and only one of them computes at a time.
   */
  protected get sourceOnCallingThread(): PlanSource {
    return { ...this.source, engine: { ...this.source.engine, threads: 1 } };
  }

  /**
   * Takes `rows` raw rows: a view of the caller's chunk, to be copied if kept. With `unchecked`
   * (only where checksFinite), their values were not yet checked to be finite: consume() must
   * keep nothing of them unless checkFiniteRows(x, width, unchecked.firstRow) would pass.
   */
  protected abstract consume(
    x: Float32Array,
    rows: number,
    unchecked?: { firstRow: number },
  ): void | Promise<void>;

  /**
   * Whether consume() can tell non-finite values from its own pass over the rows (the first
   * BatchNorm's plan sums every input value), so that push() need not read a chunk of one slice
   * twice. Chunks of several slices are checked whole first (a bad one is rejected whole).
   */
  protected get checksFinite(): boolean {
    return false;
  }

  /** Writes the new statistics of every BatchNorm for `n` ≥ minimumRows(layers) rows. */
  protected abstract compute(n: number): Promise<ModeResult>;

  /** Releases executors and stored rows (after finish, whatever its outcome). */
  protected abstract release(): Promise<void>;

  async push(chunk: Float32Array): Promise<void> {
    this.enter('push');
    try {
      const width = this.inputWidth;
      const step = this.options.chunkRows;
      const fused = this.checksFinite && chunk.length <= step * width;
      const rows = fused ? wholeRows(chunk, width) : countRows(chunk, width, this.received);
      checkCapacity(this.received, rows, this.options.maxSamples);
      for (let start = 0; start < rows; start += step) {
        const end = Math.min(rows, start + step);
        await this.consume(
          chunk.subarray(start * width, end * width),
          end - start,
          fused ? { firstRow: this.received } : undefined,
        );
        this.received += end - start;
        this.progress({ phase: 'receiving', rows: this.received, totalRows: this.received });
        await this.pause();
      }
    } finally {
      this.busy = false;
    }
  }

  async finish(): Promise<RecalibrationResult> {
    this.enter('finish');
    this.closed = true;
    try {
      const n = this.received;
      // Every BatchNorm needs two values per channel for a variance (n·H·W − 1 > 0 in `exact`
      // and `prior`; a train-mode batch in `running`): two rows where one is a single value
      // (BatchNorm1d, 1×1 maps), one row where every BatchNorm sees maps of H·W > 1.
      const minimum = this.minimumRows;
      if (n < minimum) {
        const single = singleValueLayer(this.layers, n);
        throw new NormserveError(
          'TOO_FEW_SAMPLES',
          n === 0 || single === undefined
            ? `no rows were received (an empty upload): need at least ${minimum} sample${minimum === 1 ? '' : 's'}`
            : `need at least ${minimum} samples: one sample gives BatchNorm ${single.path} (${single.bn.kind}, input [${single.inputShape.join(', ')}]) one value per channel, which has no variance`,
        );
      }
      const extra = await this.compute(n);
      this.checkFinite();
      this.checkVariance(n);
      return { samples: n, layers: this.shifts(), ...extra };
    } catch (e) {
      this.state.restoreBuffers();
      throw e;
    } finally {
      this.state.leave();
      await this.release();
      this.busy = false;
    }
  }

  async abort(): Promise<void> {
    if (this.closed) return;
    if (this.busy) throw new Error('Recalibrator.abort(): a push() is still running; await it');
    this.closed = true;
    this.state.restoreBuffers();
    await this.release();
  }

  protected progress(p: RecalibrationProgress): void {
    this.options.onProgress?.(p);
  }

  protected async pause(): Promise<void> {
    if (this.options.pause) await this.options.pause();
  }

  /** pause, bound: what measureInSlices awaits between slices. */
  protected readonly slicePause = (): Promise<void> => this.pause();

  private enter(what: string): void {
    if (this.closed) throw new Error(`Recalibrator.${what}(): finish() was already called`);
    if (this.busy) {
      throw new Error(
        `Recalibrator.${what}(): another push() or finish() is still running; await each call`,
      );
    }
    this.busy = true;
  }

  /** Float32 overflow in the activations would store NaN/∞ statistics: refuse instead. */
  private checkFinite(): void {
    for (const { path, bn } of this.layers) {
      const ok =
        bn.runningMean.data.every(Number.isFinite) && bn.runningVar.data.every(Number.isFinite);
      if (!ok) {
        throw new NormserveError(
          'INVALID_INPUT',
          `the statistics of BatchNorm layer ${path} are not finite: the inputs overflow float32 in the network`,
        );
      }
    }
  }

  /**
   * Refuses statistics that take away a channel's variance where its parent had some: samples
   * alike there (three copies of one row, all-zero images) give running_var 0, which PyTorch
   * stores too, but the folded layer then scales the channel by 1/√eps (≈ 316× a running_var of
   * 1's scale at eps 1e-5) and the version published would be served at once: such an upload
   * carries the information of one sample. A channel counts when the samples' own variance
   * vanishes next to eps (in float32, var + eps is eps) and the folded scale 1/√(var + eps) of
   * what would be stored grows by more than √2 from its parent's (var + eps < (parent + eps) / 2),
   * in every mode: in `prior` mode the stored variance is the blend, which keeps N/(N + n) of the
   * model's, so a prior must keep about half of it (N ≥ n·(parent − eps)/(parent + eps), named in
   * the message). A rule on eps instead let a prior of 5e-5 against 3 copies of a row publish a
   * model whose scale grew 223× (the third reader of 2026-12-04), the attacker's case of 1e-8 but
   * for a strength; one on the growth alone is the same rule for every mode.
   *
   * Samples that vary only a little are kept, as PyTorch keeps them: a variance at or below eps
   * is what a low-contrast domain gives (the digits as 0.001·x + 1.6: 0.939 accuracy on that
   * domain once recalibrated), and copies of one row with noise of 1e-4 give the same
   * statistics; only the data tells them apart (the second reader of 2026-12-04 found a rule on
   * eps refusing the first to catch the second). A parent's running_var at or below eps — a
   * constant input column (a digit image's corner pixel), whose initial 1 training's momentum
   * decayed to 0.9^k — already scaled the channel by at least 1/√(2·eps): statistics that find it
   * constant again change it by less than √2 and are kept, as PyTorch keeps them (review57).
   */
  private checkVariance(n: number): void {
    const layers = this.layers.map(({ path, bn }, k) => {
      const parent = this.state.vars[k]!;
      const next = bn.runningVar.data;
      const own = this.dataVars[k] ?? next;
      const eps = bn.eps;
      const epsF32 = Math.fround(eps);
      let flat = 0;
      /** How many times the model's folded scale a counted channel would get, at most. */
      let growth = 0;
      /** The prior strength that keeps every counted channel within √2 of its scale. */
      let prior = 0;
      for (let c = 0; c < next.length; c++) {
        const v = next[c]!;
        const p = parent[c]!;
        if (Math.fround(own[c]! + epsF32) !== epsF32 || !(2 * (v + eps) < p + eps)) continue;
        flat++;
        growth = Math.max(growth, Math.sqrt((p + eps) / (v + eps)));
        // N/(N + n)·p + eps ≥ (p + eps)/2 ⇔ N ≥ n·(p − eps)/(p + eps); p > eps here.
        prior = Math.max(prior, (n * (p - eps)) / (p + eps));
      }
      return { path, channels: next.length, flat, growth, prior };
    });
    const refused = layers.find((l) => l.flat > 0);
    if (refused === undefined) return;
    const { path, channels, flat } = refused;
    // Named for every layer at once: a strength that helps the first only was refused again at
    // the next (the third reader of 2026-12-04).
    const keep = `a prior_strength of at least ${roundedUp(Math.max(...layers.map((l) => l.prior)))} keeps half of the model's variance in them`;
    const blended = this.dataVars.length > 0;
    const scaled = `the folded layer would scale them by up to ${Number(refused.growth.toPrecision(3))} times the model's scale`;
    // Samples that vary in the other channels are no copies: those channels are constant on
    // this data (a unit it never activates, a dead ReLU of the new domain), and more samples of
    // it will not help; a share of the model's variance does (fidelity review of 2026-12-04).
    throw new NormserveError(
      'TOO_FEW_SAMPLES',
      flat < channels
        ? `the ${n} samples give BatchNorm ${path} no variance in ${flat} of its ${channels} channels, though they vary in the others: those channels are constant on this data (a unit it never activates, a feature it never changes) where the model's running_var exceeded eps, so ${scaled} for any later input that does vary there (${blended ? "their running_var would keep the prior_strength's share of the model's" : 'PyTorch would store running_var 0'}); ${blended ? keep : `mode=prior with ${keep}`}`
        : `the ${n} samples give BatchNorm ${path} no variance in ${flat} of its ${channels} channels (the samples are alike there, where the model's running_var exceeded eps): ${scaled}${blended ? ` (${keep})` : ''}; upload samples that vary (identical rows count as one)`,
    );
  }

  private shifts(): RecalibrationResult['layers'] {
    return this.layers.map(({ index, path, bn }, k) =>
      layerShift(
        index,
        path,
        bn.eps,
        this.state.means[k]!,
        this.state.vars[k]!,
        bn.runningMean.data,
        bn.runningVar.data,
      ),
    );
  }
}

/** `x` rounded up to three significant digits, for a message's bound (`at least 1.34`). */
function roundedUp(x: number): number {
  if (!(x > 0)) return 0;
  if (x === Number.POSITIVE_INFINITY) return x;
  const unit = 10 ** (Math.floor(Math.log10(x)) - 2);
  const up = (k: number) => Number((k * unit).toPrecision(3));
  const rounded = up(Math.ceil(x / unit));
  // x / unit may round one unit in the last place down (6.260000000000001e-24).
  return rounded < x ? up(Math.ceil(x / unit) + 1) : rounded;
}
