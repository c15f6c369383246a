/**
 * Bounds how many processes run at once; callers beyond wait in a FIFO line that is itself
 * bounded in length and in waiting time, so a burst of clients neither forks without limit nor
 * piles up without limit.
 */

export interface LimiterOptions {
  /** Slots: processes at once (at least 1). */
  concurrency: number;
  /** Callers that may wait for a slot; one more is refused at once. */
  maxQueue: number;
  /** A caller that waited this long is refused. */
  maxWaitMs: number;
}

export interface LimiterCounts {
  running: number;
  queued: number;
}

export type BusyReason = 'queue-full' | 'timeout' | 'aborted';

/** No slot was granted; nothing needs releasing. */
export class LimiterBusyError extends Error {
  constructor(readonly reason: BusyReason) {
    super(`no free slot (${reason})`);
    this.name = 'LimiterBusyError';
  }
}

/** Gives the slot back; calling it again does nothing. */
export type Release = () => void;

interface Waiter {
  grant(): void;
}

export class ProcessLimiter {
  private running = 0;
  private readonly queue: Waiter[] = [];

  constructor(private readonly options: LimiterOptions) {}

  get counts(): LimiterCounts {
    return { running: this.running, queued: this.queue.length };
  }

  /** Resolves with a release function once a slot is ours; `signal` gives up waiting. */
  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(new LimiterBusyError('aborted'));
    const free = this.tryAcquire();
    if (free) return Promise.resolve(free);
    if (this.queue.length >= this.options.maxQueue) {
      return Promise.reject(new LimiterBusyError('queue-full'));
    }
    return new Promise<Release>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const leave = (reason: BusyReason) => {
        const at = this.queue.indexOf(waiter);
        if (at >= 0) this.queue.splice(at, 1);
        cleanup();
        reject(new LimiterBusyError(reason));
      };
      const waiter: Waiter = {
        grant: () => {
          cleanup();
          resolve(this.releaser());
        },
      };
      const onAbort = () => leave('aborted');
      const timer = setTimeout(() => leave('timeout'), this.options.maxWaitMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  /**
   * A slot only if one is free now and nobody waits (nobody overtakes the line: a freed slot
   * goes to a waiter first, see releaser); for work that must never delay callers.
   */
  tryAcquire(): Release | undefined {
    if (this.running >= this.options.concurrency || this.queue.length > 0) return undefined;
    this.running++;
    return this.releaser();
  }

  private releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // The slot passes straight to the longest waiter, so `running` stays as it is.
      const next = this.queue.shift();
      if (next) next.grant();
      else this.running--;
    };
  }
}
