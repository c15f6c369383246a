import { LRUCache } from 'lru-cache';
import type { GitCacheStats } from '../status/status-report.js';

/** What `/metrics`, `/health` and `status` report about it. */
export type UploadPackCacheStats = GitCacheStats;

/**
 * Finished upload-pack answers by request key (git/upload-pack-request.ts), bounded by bytes
 * and evicted least recently used first. Answers still being recorded count against the same
 * budget, so memory stays under twice the bound however many run at once.
 */
export class UploadPackCache {
  private readonly answers: LRUCache<string, Buffer> | undefined;
  private recordingBytes = 0;
  readonly counts = { hits: 0, shared: 0, misses: 0, evictions: 0, warmups: 0 };

  constructor(readonly maxBytes: number) {
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

  /** Room for `bytes` more of answers being recorded; false: record no further. */
  reserve(bytes: number): boolean {
    if (this.recordingBytes + bytes > this.maxBytes) return false;
    this.recordingBytes += bytes;
    return true;
  }

  unreserve(bytes: number): void {
    this.recordingBytes = Math.max(0, this.recordingBytes - bytes);
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
