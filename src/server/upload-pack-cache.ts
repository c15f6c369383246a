import { LRUCache } from 'lru-cache';
import type { GitCacheStats } from '../status/status-report.js';
import { ByteBudget } from './byte-budget.js';

/** What `/metrics`, `/health` and `status` report about it. */
export type UploadPackCacheStats = GitCacheStats;

/**
 * Finished upload-pack answers by request key (git/upload-pack-request.ts), bounded by bytes
 * and evicted least recently used first. Answers being recorded, and recorded answers that
 * readers are still being sent, hold bytes of `recording`, a second budget of the same size,
 * so memory stays under twice the bound however many run at once and however slowly they are
 * read.
 */
export class UploadPackCache {
  private readonly answers: LRUCache<string, Buffer> | undefined;
  readonly recording: ByteBudget;
  readonly counts = { hits: 0, shared: 0, misses: 0, evictions: 0, warmups: 0 };

  constructor(readonly maxBytes: number) {
    this.recording = new ByteBudget(maxBytes);
    this.answers =
      maxBytes > 0
        ? new LRUCache<string, Buffer>({
            maxSize: maxBytes,
            maxEntrySize: maxBytes,
            sizeCalculation: (answer) => Math.max(1, answer.length),
            dispose: (_answer, _key, reason) => {
              if (reason === 'evict') this.counts.evictions++;
            },
          })
        : undefined;
  }

  get enabled(): boolean {
    return this.answers !== undefined;
  }

  get(key: string): Buffer | undefined {
    return this.answers?.get(key);
  }

  set(key: string, answer: Buffer): void {
    this.answers?.set(key, answer);
  }

  get stats(): UploadPackCacheStats {
    return {
      max_bytes: this.maxBytes,
      bytes: this.answers?.calculatedSize ?? 0,
      entries: this.answers?.size ?? 0,
      ...this.counts,
    };
  }
}
