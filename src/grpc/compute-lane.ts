/**
 * The longest a call's synchronous compute waits, after the previous call's reply was handed to
 * grpc-js, for that call to be over (its trailers handed to HTTP/2) before it starts anyway: a
 * client that does not read its replies (HTTP/2 flow control holds the reply back) must not hold
 * up the other calls. A 4096-row digits-cnn reply (~330 KB, several 64 KB client windows) was
 * over 2–12 ms after its compute on localhost (six concurrent calls on one channel, WORKERS=1); one
 * whose client was still sending 1 MB requests took 656 ms, and the next compute started at this
 * bound instead.
 */
export const REPLY_FLUSH_WAIT_MS = 100;

/**
 * Runs the synchronous computes of gRPC calls one per turn of the event loop, each once the
 * previous call's reply has left. grpc-js hands a connection's calls to their handlers in one turn
 * when their messages arrive together, and a synchronous compute (the engine with
 * BATCH_MAX_DELAY_US=0) answered from that turn is only written when the turn ends: six
 * 4096-row digits-cnn calls on one channel all got their replies together after the sixth compute
 * (2.9–4.3 s), each compute taking 300–460 ms. A task gets `release`, to call when its call is
 * over (or when it computes nothing on this thread: a dynamic batch, the engine's workers); the
 * next task starts in a later macrotask, after the HTTP/2 session has written what was sent.
 */
export class ComputeLane {
  private readonly waiting: ((release: () => void) => void)[] = [];
  private busy = false;

  run(task: (release: () => void) => void): void {
    this.waiting.push(task);
    if (this.busy) return;
    // Never in the turn that received it: that turn may have replies still to write.
    this.busy = true;
    setImmediate(() => this.startNext());
  }

  private startNext(): void {
    const task = this.waiting.shift();
    if (task === undefined) {
      this.busy = false;
      return;
    }
    this.busy = true;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      setImmediate(() => this.startNext());
    };
    try {
      task(release);
    } catch (e) {
      release();
      throw e;
    }
  }
}
