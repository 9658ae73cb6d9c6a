/**
 * At most a few worker launches at once. A launch has synchronous parts (spawning the sandbox,
 * writing its files) of some milliseconds each; hundreds of tasks arriving together would hold the
 * event loop for tens of seconds, and the agent's heartbeats with it (and, for the embedded agent,
 * the head). Queued launches wait their turn; an aborted wait gives its turn up.
 */
export class StartQueue {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Wait for a turn; call the returned function once the launch is done (whatever its outcome). */
  async take(signal: AbortSignal): Promise<() => void> {
    if (this.active >= this.limit) {
      await new Promise<void>((resolve, reject) => {
        const go = (): void => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = (): void => {
          const i = this.waiting.indexOf(go);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new Error('aborted'));
        };
        if (signal.aborted) return onAbort();
        this.waiting.push(go);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    } else {
      this.active++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The turn passes straight to the next waiter, after the current tick.
      if (next) setImmediate(next);
      else this.active--;
    };
  }
}
