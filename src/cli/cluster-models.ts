import cluster, { type Worker } from 'node:cluster';
import type { Log, ModelRegistry } from '../service/index.js';
import type { FromWorker, PrimaryChannel } from './cluster-messages.js';
import { sendToWorker } from './cluster-messages.js';

/**
 * One server, one served version, with WORKERS > 1: when a worker changes what a model serves
 * (an admin's `:activate` or version delete, a recalibration published with or without activate —
 * HTTP, a job or automatic — anything that writes through ModelRegistry), every other worker of
 * the server serves the change before the call that made it returns, as TF Serving's or Triton's
 * one process would. The registry awaits its `onWrite` hook after each of its writes; here the hook
 * asks the primary (`model-written`), which asks every other worker to refresh that model
 * (`refresh-model`) and answers (`models-refreshed`) once every ready one confirmed
 * (`model-refreshed`), a worker exited, or REFRESH_TIMEOUT_MS passed (who was left out — no
 * answer, exited, or serving another version than the writer's after its refresh — is logged by
 * the writer; its next repository scan catches up). Workers still starting are told too but not waited for:
 * one whose first scan read the repository before the write refreshes again.
 *
 * Separate servers sharing the repository (replicas) are not told: they follow by polling
 * (MODEL_POLL_INTERVAL_MS).
 */
export const REFRESH_TIMEOUT_MS = 5_000;
/** How long the writing worker waits for `models-refreshed` (the primary's wait, and slack). */
const WRITTEN_REQUEST_TIMEOUT_MS = REFRESH_TIMEOUT_MS + 5_000;

type FromWorkerOf<T extends FromWorker['type']> = Extract<FromWorker, { type: T }>;

/** A writer's `model-written` the primary is collecting confirmations for. */
interface Refresh {
  writer: Worker;
  requestId: number;
  asked: number;
  /** Ready workers that have not confirmed yet. */
  waiting: Set<number>;
  leftOut: { worker: number; reason: string }[];
  timer: NodeJS.Timeout;
}

/** The server's live workers (a worker that exited but whose channel is open is dead already). */
function liveWorkers(): Worker[] {
  return Object.values(cluster.workers ?? {}).filter(
    (w): w is Worker => w !== undefined && !w.isDead(),
  );
}

/** The primary's half: relays a worker's write to the others and answers once they refreshed. */
export class ClusterModelsPrimary {
  /** Workers that said they are ready (listening): only they are waited for. */
  private readonly ready = new Set<number>();
  private readonly refreshes = new Map<number, Refresh>();
  private nextId = 0;

  constructor(
    private readonly timeoutMs = REFRESH_TIMEOUT_MS,
    private readonly workers: () => Worker[] = liveWorkers,
  ) {}

  add(worker: Worker): void {
    this.ready.add(worker.id);
  }

  /** A worker exited: it confirms nothing more, and a refresh it asked for is answered to no one. */
  retire(worker: Worker): void {
    this.ready.delete(worker.id);
    for (const [id, r] of this.refreshes) {
      if (r.writer.id === worker.id) this.finish(id, r, false);
      else if (r.waiting.delete(worker.id)) {
        r.leftOut.push({ worker: worker.id, reason: 'exited' });
        if (r.waiting.size === 0) this.finish(id, r);
      }
    }
  }

  /** A worker changed `model`: every other worker refreshes it. */
  written(writer: Worker, message: FromWorkerOf<'normserve:model-written'>): void {
    const others = this.workers().filter((w) => w.id !== writer.id);
    const awaited = others.filter((w) => this.ready.has(w.id) && w.isConnected());
    const id = this.nextId++;
    const refresh: Refresh = {
      writer,
      requestId: message.id,
      asked: awaited.length,
      waiting: new Set(awaited.map((w) => w.id)),
      leftOut: [],
      timer: setTimeout(() => {
        for (const worker of refresh.waiting)
          refresh.leftOut.push({ worker, reason: `no answer within ${this.timeoutMs} ms` });
        this.finish(id, refresh);
      }, this.timeoutMs),
    };
    this.refreshes.set(id, refresh);
    for (const w of others)
      sendToWorker(w, {
        type: 'normserve:refresh-model',
        id,
        model: message.model,
        active: message.active,
      });
    if (refresh.waiting.size === 0) this.finish(id, refresh);
  }

  /** A worker refreshed (late confirmations and those of starting workers are ignored). */
  refreshed(from: Worker, message: FromWorkerOf<'normserve:model-refreshed'>): void {
    const r = this.refreshes.get(message.id);
    if (!r?.waiting.delete(from.id)) return;
    if (message.problem !== undefined) r.leftOut.push({ worker: from.id, reason: message.problem });
    if (r.waiting.size === 0) this.finish(message.id, r);
  }

  private finish(id: number, r: Refresh, answer = true): void {
    clearTimeout(r.timer);
    this.refreshes.delete(id);
    if (answer)
      sendToWorker(r.writer, {
        type: 'normserve:models-refreshed',
        id: r.requestId,
        asked: r.asked,
        left_out: r.leftOut,
      });
  }
}

/**
 * A worker's `refresh-model` handler (PrimaryChannel.onRefreshModel): reloads the model from the
 * repository, then confirms — also when the refresh failed (logged), or when it serves another
 * version than the writer (`active`; the version did not load here), naming the problem, which
 * the writer logs: the wait is for this worker to have read the repository. The version the writer
 * serves, when this worker failed to read it (ModelRegistry.readAgain), is read again at once.
 */
export function answerRefreshRequests(
  channel: PrimaryChannel,
  registry: ModelRegistry,
  log: Log,
): (id: number, model: string, active?: number | null) => void {
  return (id, model, active) => {
    registry
      .refreshModel(model)
      .then(async (snapshot) =>
        // The version the writer serves, which this worker failed to read once (an EMFILE): read
        // again now, not when its retry is due, up to 1,024 scans on (h290 2).
        typeof active === 'number' && snapshot.active !== active
          ? ((await registry.readAgain(model, active)) ?? snapshot)
          : snapshot,
      )
      .then(
        (snapshot) => {
          const serves = snapshot.active ?? null;
          const problem =
            active === undefined || serves === active
              ? undefined
              : `serves version ${serves ?? 'none'}, not ${active ?? 'none'}`;
          channel.send({ type: 'normserve:model-refreshed', id, ...(problem ? { problem } : {}) });
        },
        (e: unknown) => {
          log.warn({ err: e, model }, 'refreshing a model another worker changed failed');
          const problem = `its refresh failed: ${e instanceof Error ? e.message : String(e)}`;
          channel.send({ type: 'normserve:model-refreshed', id, problem: problem.slice(0, 1024) });
        },
      );
  };
}

/**
 * The registry's `onWrite` hook of a worker: resolves once the other ready workers serve what this
 * one wrote, or the wait ended (logged; never rejects).
 */
export function announceModelWrites(
  channel: PrimaryChannel,
  log: Log,
): (model: string, active: number | null) => Promise<void> {
  return async (model, active) => {
    try {
      const done = await channel.request(
        { type: 'normserve:model-written', model, active },
        'normserve:models-refreshed',
        WRITTEN_REQUEST_TIMEOUT_MS,
      );
      if (done.left_out.length > 0)
        log.warn(
          { model, asked: done.asked, left_out: done.left_out },
          'some workers do not serve the change yet; their next repository scan catches up',
        );
    } catch (e) {
      log.error(
        { err: e, model },
        'the other workers were not told of the change; their next repository scan serves it',
      );
    }
  };
}

/**
 * One repository scan of a cluster worker's poll (MODEL_POLL_INTERVAL_MS): a model whose active
 * version the scan changed — another replica's `:activate`, publish or rollback, which no message
 * told this server of — is announced as this worker's own writes are (`announce`:
 * announceModelWrites), so the server's other workers serve it now rather than at their own next
 * scan. Each worker scans on its own timer: a replica's activation was served by one worker and
 * not the other for up to a poll interval, and one client of the server saw versions 1 and 2
 * alternate some 150 times in 600 ms (ops review of 2026-12-04, finding 2). The announcement is
 * not awaited (logged by `announce` if it fails).
 */
export async function scanAndAnnounce(
  registry: Pick<ModelRegistry, 'list' | 'refresh'>,
  announce: (model: string, active: number | null) => Promise<void>,
): Promise<string[]> {
  const before = new Map(registry.list().map((m) => [m.name, m.active]));
  await registry.refresh();
  const changed: string[] = [];
  for (const m of registry.list()) {
    if (!before.has(m.name) || before.get(m.name) === m.active) continue;
    changed.push(m.name);
    void announce(m.name, m.active ?? null);
  }
  return changed;
}
