/**
 * Whether the served index is worth cloning yet. A fresh pull-through server has fetched no
 * source index: what it would serve is empty, and a `moon update` that clones it leaves the
 * client with "not in the index" until its next update. Until the first index is published,
 * requests that need it wait for it (bounded), then get 503 with Retry-After.
 */
export class IndexReadiness {
  private isReady: boolean;
  private readonly waiters = new Set<() => void>();

  constructor(ready: boolean) {
    this.isReady = ready;
  }

  get ready(): boolean {
    return this.isReady;
  }

  /** The first index is served: every waiting request goes on. Later calls do nothing. */
  markReady(): void {
    if (this.isReady) return;
    this.isReady = true;
    for (const wake of [...this.waiters]) wake();
  }

  /** True once ready; false when `waitMs` passed first or `signal` aborted (the client left). */
  wait(waitMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.isReady) return Promise.resolve(true);
    if (waitMs <= 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve(this.isReady);
      };
      const timer = setTimeout(done, waitMs);
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
