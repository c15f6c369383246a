import type { Logger } from 'pino';
import { describeError } from '../core/errors.js';
import type { SyncReport } from '../registry/index-sync.js';

export interface SyncStatus {
  /** Whether syncs repeat on their own ([mirror] auto_sync). */
  auto: boolean;
  interval_seconds: number | null;
  running: boolean;
  next_run: string | null;
  last_run: SyncReport | null;
  last_error: string | null;
}

/**
 * Runs index syncs in the background: one at start, then one every interval when auto_sync is
 * on, plus any asked for by an operator. Never two at once: a request during a sync gets the
 * next one. A failed sync is logged and the last good index stays served. While
 * `retryDelay` gives a delay (a fresh proxy without any index yet), the next sync comes after
 * that delay instead of the interval.
 */
export class SyncScheduler {
  private running: Promise<SyncReport> | undefined;
  private followUp: Promise<SyncReport> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private nextRun: number | undefined;
  private lastReport: SyncReport | undefined;
  private lastError: string | undefined;
  private stopped = false;

  constructor(
    private readonly sync: (trigger: string, force: boolean) => Promise<SyncReport>,
    private readonly intervalMs: number | undefined,
    private readonly logger: Logger | undefined,
    private readonly retryDelay: () => number | undefined = () => undefined,
  ) {}

  /** Starts the first sync now, in the background. */
  start(): void {
    void this.trigger('startup').catch(() => undefined);
  }

  /**
   * Runs a sync now. During a sync, the caller gets the next one, which starts when the running
   * one ends: the running one may have read the upstreams before the change the caller wants to
   * see (an operator who just published upstream). Callers that come meanwhile share that one.
   */
  trigger(reason: string, force = false): Promise<SyncReport> {
    if (this.running) {
      this.followUp ??= this.running
        .catch(() => undefined)
        .then(() => {
          this.followUp = undefined;
          if (this.stopped) throw new Error('the server is shutting down');
          return this.trigger(reason, force);
        });
      return this.followUp;
    }
    clearTimeout(this.timer);
    this.nextRun = undefined;
    const run = this.sync(reason, force)
      .then((report) => {
        this.lastReport = report;
        this.lastError = undefined;
        return report;
      })
      .catch((error: unknown) => {
        this.lastError = describeError(error);
        this.logger?.error({ err: error }, 'index sync failed; the last good index stays served');
        throw error;
      })
      .finally(() => {
        this.running = undefined;
        this.scheduleNext();
      });
    this.running = run;
    return run;
  }

  /**
   * Stops scheduling and waits a little for a running sync. Cutting one short is harmless: git
   * moves refs atomically, and a lock left behind is taken over once its owner is gone.
   */
  async stop(waitMs = 5000): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.running) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.running.catch(() => undefined),
      new Promise((resolve) => {
        timer = setTimeout(resolve, waitMs);
      }),
    ]);
    clearTimeout(timer);
  }

  status(): SyncStatus {
    return {
      auto: this.intervalMs !== undefined,
      interval_seconds: this.intervalMs === undefined ? null : this.intervalMs / 1000,
      running: this.running !== undefined,
      next_run: this.nextRun === undefined ? null : new Date(this.nextRun).toISOString(),
      last_run: this.lastReport ?? null,
      last_error: this.lastError ?? null,
    };
  }

  private scheduleNext(): void {
    if (this.stopped) return;
    const retry = this.retryDelay();
    const delay = retry === undefined ? this.intervalMs : Math.min(retry, this.intervalMs ?? retry);
    if (delay === undefined) return;
    if (retry !== undefined) {
      this.logger?.warn(`no source index fetched yet: next attempt in ${Math.ceil(delay / 1000)} s`);
    }
    this.nextRun = Date.now() + delay;
    this.timer = setTimeout(() => {
      void this.trigger(retry === undefined ? 'schedule' : 'retry').catch(() => undefined);
    }, delay);
    this.timer.unref();
  }
}
