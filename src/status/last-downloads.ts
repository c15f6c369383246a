import { z } from 'zod';
import { moduleKey } from '../core/module-name.js';
import type { DownloadRecords } from '../gc/garbage-selection.js';
import { readState, writeState } from './json-state.js';

/**
 * Records kept per kind; a registry serves far fewer versions (mooncakes.io: ~6.5k). Past this,
 * the least recently downloaded are forgotten (and count by their file's age in `gc`).
 */
const MAX_RECORDS = 200_000;

const RecordsSchema = z.record(z.string(), z.string());
const FileSchema = z.object({
  archives: RecordsSchema.default({}),
  assets: RecordsSchema.default({}),
});

/**
 * When each module@version's archive and prebuilt wasm were last downloaded, for `gc
 * --older-than`. On the hot path a download is one Map update (delete + set keeps the Map in
 * download order, so the oldest record is the first one, dropped in O(1) past MAX_RECORDS);
 * `flush` (with the hourly counts) writes data/state/last-downloads.json, merged with what
 * another server on the same registry wrote, the later time winning.
 */
export class LastDownloads {
  private readonly archives = new Map<string, number>();
  private readonly assets = new Map<string, number>();
  private dirty = false;

  constructor(
    private readonly file: string,
    private readonly now: () => number = Date.now,
    private readonly maxRecords = MAX_RECORDS,
  ) {}

  async load(): Promise<void> {
    const saved = await readLastDownloads(this.file);
    mergeInto(this.archives, saved.archives, this.maxRecords);
    mergeInto(this.assets, saved.assets, this.maxRecords);
  }

  archive(module: string, version: string): void {
    this.note(this.archives, moduleKey(module, version));
  }

  asset(module: string, version: string): void {
    this.note(this.assets, moduleKey(module, version));
  }

  async flush(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      const saved = await readLastDownloads(this.file);
      mergeInto(this.archives, saved.archives, this.maxRecords);
      mergeInto(this.assets, saved.assets, this.maxRecords);
      await writeState(this.file, { archives: toJson(this.archives), assets: toJson(this.assets) });
    } catch (error) {
      this.dirty = true;
      throw error;
    }
  }

  private note(records: Map<string, number>, key: string): void {
    records.delete(key);
    records.set(key, this.now());
    if (records.size > this.maxRecords) records.delete(records.keys().next().value as string);
    this.dirty = true;
  }
}

/** The records on disk (none when the file is missing or unreadable: they are only hints). */
export async function readLastDownloads(file: string): Promise<DownloadRecords> {
  const saved = await readState(file, FileSchema, { archives: {}, assets: {} });
  return { archives: fromJson(saved.archives), assets: fromJson(saved.assets) };
}

function fromJson(records: Record<string, string>): Map<string, number> {
  const parsed = [...Object.entries(records)]
    .map(([key, at]): [string, number] => [key, Date.parse(at)])
    .filter(([, at]) => Number.isFinite(at))
    .sort(([, a], [, b]) => a - b);
  return new Map(parsed);
}

function toJson(records: Map<string, number>): Record<string, string> {
  return Object.fromEntries([...records].map(([key, at]) => [key, new Date(at).toISOString()]));
}

/** Takes the later time of each key; keys stay in download order, oldest first. */
function mergeInto(records: Map<string, number>, saved: ReadonlyMap<string, number>, max: number): void {
  let changed = false;
  for (const [key, at] of saved) {
    const mine = records.get(key);
    if (mine === undefined || at > mine) {
      records.set(key, at);
      changed = true;
    }
  }
  if (!changed) return;
  const ordered = [...records].sort(([, a], [, b]) => a - b);
  records.clear();
  for (const [key, at] of ordered.slice(-max)) records.set(key, at);
}
