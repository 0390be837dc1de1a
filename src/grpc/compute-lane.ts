/**
 * The longest a call's synchronous compute waits, after the previous call of the same HTTP/2
 * session had its reply handed to grpc-js, for that call to be over (its trailers handed to
 * HTTP/2) before it starts anyway. Only that session's next call waits: a client that does not
 * read its replies (HTTP/2 flow control holds them back) delays its own calls by this much each,
 * never another session's. A 4096-row digits-cnn reply (~330 KB, several 64 KB client windows) was
 * over 2–12 ms after its compute on localhost (six concurrent calls on one channel, WORKERS=1); one
 * whose client was still sending 1 MB requests took 656 ms, and the next compute started at this
 * bound instead.
 */
export const REPLY_FLUSH_WAIT_MS = 100;

/** A call waiting for its turn, with the HTTP/2 session (connection) it came on. */
interface Waiting {
  session: string;
  task: (release: () => void) => void;
}

/**
 * Runs the synchronous computes of gRPC calls one per turn of the event loop, each in a later
 * macrotask than the previous one. grpc-js hands a connection's calls to their handlers in one
 * turn when their messages arrive together, and a synchronous compute (the engine with
 * BATCH_MAX_DELAY_US=0) answered from that turn is only written when the turn ends: six
 * 4096-row digits-cnn calls on one channel all got their replies together after the sixth compute
 * (2.9–4.3 s), each compute taking 300–460 ms.
 *
 * A task gets `release`, to call when its call is over (or when it computes nothing on this
 * thread: a dynamic batch, the engine's workers). Until then the next call of the same session
 * waits, so a reply bigger than the client's window gets the loop turns its WINDOW_UPDATEs need
 * before the session's next compute; calls of other sessions go first meanwhile (oldest first), so
 * a session whose replies are held back by flow control costs the others nothing but its computes.
 */
export class ComputeLane {
  private readonly waiting: Waiting[] = [];
  /** Sessions whose last started call is not over yet. */
  private readonly sending = new Set<string>();
  private scheduled = false;

  /** `session` names the call's HTTP/2 session: calls with the same name wait for each other. */
  run(session: string, task: (release: () => void) => void): void {
    this.waiting.push({ session, task });
    this.schedule();
  }

  /** Never in the current turn: it may have replies still to write. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.startNext();
    });
  }

  private startNext(): void {
    const i = this.waiting.findIndex((w) => !this.sending.has(w.session));
    // None, or all of sessions still sending: a release schedules the next.
    if (i < 0) return;
    const { session, task } = this.waiting.splice(i, 1)[0]!;
    this.sending.add(session);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.sending.delete(session);
      this.schedule();
    };
    try {
      task(release);
    } catch (e) {
      release();
      throw e;
    } finally {
      if (this.waiting.length > 0) this.schedule();
    }
  }
}
