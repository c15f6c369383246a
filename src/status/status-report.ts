/**
 * What `moonbit-registry status`, `GET /status` and the status web page report: one shape for
 * all three, so the terminal and the browser always tell the same facts.
 */

export type SourceState = 'ok' | 'failing' | 'unknown' | 'disabled';

export interface SourceStatus {
  name: string;
  /** A `[[sources]]` type, or `hosted` for the modules published here. */
  type: string;
  /** Where its modules come from: the registry's URL, a git repository (and folder), or bundles. */
  url: string;
  priority: number;
  enabled: boolean;
  default: boolean;
  state: SourceState;
  /** ISO time of the last successful index fetch, or null. */
  last_sync: string | null;
  last_error: string | null;
  /** Commit of this source's fetched index. */
  index_commit: string | null;
  /** Versions in the served index that came from this source. */
  versions_served: number;
}

export interface MirrorRunRecord {
  started_at: string;
  finished_at: string;
  /** What was asked: patterns, `--full`, `--strict`, `-s`. */
  request: { patterns: string[]; full: boolean; strict: boolean; source: string | null };
  /** ok; failed (some versions failed); interrupted (SIGINT/SIGTERM); error (the run stopped). */
  outcome: 'ok' | 'failed' | 'interrupted' | 'error';
  downloaded: number;
  already_stored: number;
  failed: number;
  bytes: number;
  /** One line for the failure, when there was one. */
  error: string | null;
}

export interface HourlyCount {
  /** Start of the hour, ISO, UTC. */
  hour: string;
  count: number;
}

/** The running server's cache of git upload-pack answers (server/upload-pack-cache.ts). */
export interface GitCacheStats {
  /** 0: the cache is off and every request runs git. */
  max_bytes: number;
  bytes: number;
  entries: number;
  /** Answered from memory, no git process. */
  hits: number;
  /** Joined an identical request's git run in flight. */
  shared: number;
  /** Ran git. */
  misses: number;
  evictions: number;
  /** Answers computed after a new index commit before any client asked. */
  warmups: number;
}

export interface StatusReport {
  registry: { name: string; url: string; mode: 'mirror' | 'proxy' };
  /** The `serve` process that wrote the live facts, if it is running on this machine. */
  server: {
    running: boolean;
    pid: number | null;
    started_at: string | null;
    url: string | null;
    /** Null when no server runs (or one older than the cache wrote the facts). */
    git_cache: GitCacheStats | null;
  };
  index: { commit: string | null; modules: number; versions: number };
  /** `store`: "disk" (data/), or the bucket and prefix (`s3://bucket/prefix/`). */
  archives: { count: number; bytes: number; store: string };
  sync: {
    auto: boolean;
    interval: string | null;
    last_run: { at: string; ok: boolean; changed: boolean; error: string | null } | null;
    next_run: string | null;
  };
  sources: SourceStatus[];
  /** Newest first, at most 20. */
  mirror_runs: MirrorRunRecord[];
  /** Archive downloads served per hour, oldest first, the last 48 hours. */
  downloads: HourlyCount[];
}
