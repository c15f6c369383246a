import { z } from 'zod';
import { readState, writeState } from './json-state.js';
import type { LastDownloads } from './last-downloads.js';
import type { HourlyCount } from './status-report.js';

const HOUR_MS = 3_600_000;
/** Hours kept on disk (30 days); reports show the last 48. */
const KEPT_HOURS = 720;

const FileSchema = z.object({ hours: z.record(z.string(), z.number().int().nonnegative()) });

/**
 * Archive downloads served, counted per UTC hour. Counting is in memory; `flush` writes the
 * counts to data/state/downloads.json (serve does it every minute and at shutdown), so a
 * restart keeps the history and `status` can read it without a server. With `last`, each
 * download is also noted per module@version (for `gc --older-than`) and flushed with the counts.
 */
export class DownloadStats {
  private readonly hours = new Map<number, number>();
  private dirty = false;

  constructor(
    private readonly file: string,
    private readonly now: () => number = Date.now,
    private readonly last?: LastDownloads,
  ) {}

  async load(): Promise<void> {
    await this.last?.load();
    const saved = await readState(this.file, FileSchema, { hours: {} });
    for (const [hour, count] of Object.entries(saved.hours)) {
      const start = Date.parse(hour);
      if (Number.isFinite(start)) this.hours.set(start, (this.hours.get(start) ?? 0) + count);
    }
  }

  /** One archive download served (of `archive`, when known). */
  record(archive?: { module: string; version: string }): void {
    if (archive) this.last?.archive(archive.module, archive.version);
    const hour = Math.floor(this.now() / HOUR_MS) * HOUR_MS;
    this.hours.set(hour, (this.hours.get(hour) ?? 0) + 1);
    this.dirty = true;
  }

  /** The last `count` hours, oldest first, the current (partial) hour last; empty hours are 0. */
  hourly(count = 48): HourlyCount[] {
    const current = Math.floor(this.now() / HOUR_MS) * HOUR_MS;
    const out: HourlyCount[] = [];
    for (let i = count - 1; i >= 0; i--) {
      const hour = current - i * HOUR_MS;
      out.push({ hour: new Date(hour).toISOString(), count: this.hours.get(hour) ?? 0 });
    }
    return out;
  }

  /** One prebuilt wasm (or its .sha256) served: not counted, only noted for `gc --older-than`. */
  recordAsset(module: string, version: string): void {
    this.last?.asset(module, version);
  }

  async flush(): Promise<void> {
    await this.last?.flush();
    if (!this.dirty) return;
    this.dirty = false;
    const oldest = Math.floor(this.now() / HOUR_MS) * HOUR_MS - (KEPT_HOURS - 1) * HOUR_MS;
    for (const hour of this.hours.keys()) if (hour < oldest) this.hours.delete(hour);
    // Counts recorded while this write runs set `dirty` again and go with the next flush.
    const hours = Object.fromEntries(
      [...this.hours].sort(([a], [b]) => a - b).map(([h, n]) => [new Date(h).toISOString(), n]),
    );
    try {
      await writeState(this.file, { hours });
    } catch (error) {
      this.dirty = true;
      throw error;
    }
  }
}
