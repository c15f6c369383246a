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
 * on, plus any asked for by an operator. Never two at once: a request during a sync gets that
 * sync's result. A failed sync is logged and the last good index stays served.
 */
export class SyncScheduler {
  private running: Promise<SyncReport> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private nextRun: number | undefined;
  private lastReport: SyncReport | undefined;
  private lastError: string | undefined;
  private stopped = false;

  constructor(
    private readonly sync: (trigger: string, force: boolean) => Promise<SyncReport>,
    private readonly intervalMs: number | undefined,
    private readonly logger: Logger | undefined,
  ) {}

  /** Starts the first sync now, in the background. */
  start(): void {
    void this.trigger('startup').catch(() => undefined);
  }

  /** Runs a sync now, or joins the one running. */
  trigger(reason: string, force = false): Promise<SyncReport> {
    if (this.running) return this.running;
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
    if (this.stopped || this.intervalMs === undefined) return;
    this.nextRun = Date.now() + this.intervalMs;
    this.timer = setTimeout(() => {
      void this.trigger('schedule').catch(() => undefined);
    }, this.intervalMs);
    this.timer.unref();
  }
}
