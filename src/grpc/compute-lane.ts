/**
 * Runs the synchronous computes of gRPC calls in later turns of the event loop than the one that
 * received them, one call of each HTTP/2 session (connection) per turn. grpc-js hands
 * a connection's calls to their handlers in one turn when their messages arrive together, and a
 * synchronous compute (the engine with BATCH_MAX_DELAY_US=0) answered from that turn is only
 * written when the turn ends: six 4096-row digits-cnn calls on one channel all got their replies
 * together after the sixth compute (2.9–4.3 s), each compute taking 300–460 ms. One call of a
 * session per turn lets each of its replies be written before its next compute starts; the calls
 * of different sessions that arrived together are computed in one turn, as before (one compute per
 * turn in all cost a 256-row call 9 % of its throughput with 8 connections).
 *
 * One session's many queued calls delay another session's call by at most one compute, not by all
 * of them. Nothing waits for a reply to leave: a client that does not read its replies (HTTP/2
 * flow control holds them back) delays no compute, its own included. (A lane that held a session's
 * next compute until its previous call was over, at most 100 ms, made an idle CPU wait 100 ms per
 * call for such a client: bench/README.md, issue 11's fourteenth round.)
 */
export class ComputeLane {
  /** Queued tasks per session; the map's order is the sessions' turn order. */
  private readonly queues = new Map<string, (() => void)[]>();
  private scheduled = false;
  private readonly defer: (turn: () => void) => void;

  /**
   * `defer` runs the lane's next turn in a later turn of the event loop (setImmediate; a test
   * gives one that holds the turns until it lets them run).
   */
  constructor(defer: (turn: () => void) => void = (turn) => setImmediate(turn)) {
    this.defer = defer;
  }

  /** `session` names the call's HTTP/2 session: the lane takes sessions in turn. */
  run(session: string, task: () => void): void {
    const queue = this.queues.get(session);
    if (queue) queue.push(task);
    else this.queues.set(session, [task]);
    this.schedule();
  }

  /** Never in the current turn: it may have replies still to write. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.defer(() => {
      this.scheduled = false;
      this.startNext();
    });
  }

  /** One task of every session that has one waiting, in the sessions' turn order. */
  private startNext(): void {
    const turn = [...this.queues];
    let thrown: { error: unknown } | undefined;
    for (const [session, queue] of turn) {
      const task = queue.shift()!;
      // To the back of the turn order, or out of it once empty.
      this.queues.delete(session);
      if (queue.length > 0) this.queues.set(session, queue);
      try {
        task();
      } catch (error) {
        thrown ??= { error };
      }
    }
    if (this.queues.size > 0) this.schedule();
    if (thrown) throw thrown.error;
  }
}
