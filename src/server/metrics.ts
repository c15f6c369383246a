import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ArchiveResult } from './archive-route.js';
import type { UploadPackCacheStats } from './upload-pack-cache.js';

/**
 * `GET /metrics` (Prometheus text format). Labels take values from small fixed sets (routes,
 * source names from registry.toml, outcomes), never from URLs, so a client cannot grow them.
 */

/** The route of a request path, as a metrics label. */
export function routeLabel(path: string): string {
  if (path === '/git/index/info/refs') return 'git_info_refs';
  if (path === '/git/index/git-upload-pack') return 'git_upload_pack';
  if (path.startsWith('/user/')) return path.endsWith('.zip') ? 'archive' : 'module';
  if (path.startsWith('/static/')) return 'static';
  const fixed: Record<string, string> = {
    '/': 'root',
    '/health': 'health',
    '/status': 'status',
    '/metrics': 'metrics',
    '/admin/sync': 'admin_sync',
    '/api/v0/publish': 'publish',
    '/api/v0/yank': 'yank',
    '/api/v0/unyank': 'unyank',
    '/api/v0/deprecate': 'deprecate',
  };
  return fixed[path] ?? 'other';
}

export interface MetricsSources {
  /** `git upload-pack` processes running, and requests waiting for one. */
  git(): { running: number; queued: number };
  /** Stored archives (cached by the caller: a scan of data/packages). */
  archives(): Promise<{ count: number; bytes: number }>;
  /** Mirror runs recorded in data/state, by outcome, since the registry was created. */
  mirrorRuns(): Promise<Record<string, number>>;
  /** When the last successful index sync ended (ms), if any. */
  lastSyncSuccess(): number | undefined;
  /** The upload-pack answer cache. */
  gitCache(): UploadPackCacheStats;
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly duration: Histogram<'route'>;
  private readonly bytes: Counter<'route'>;
  private readonly archiveCache: Counter<'result'>;
  private readonly upstreamRequests: Counter<'source' | 'kind'>;
  private readonly upstreamErrors: Counter<'source' | 'kind'>;
  private readonly syncDuration: Histogram<'result'>;
  private readonly publishes: Counter<'result'>;
  private readonly shadowedEntries: Counter<'source'>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'moonbit_registry_http_requests_total',
      help: 'HTTP requests, by route, method and status (the code sent, or aborted when the response was cut short)',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.duration = new Histogram({
      name: 'moonbit_registry_http_request_duration_seconds',
      help: 'Time from request to the end of the response, by route',
      labelNames: ['route'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    });
    this.bytes = new Counter({
      name: 'moonbit_registry_http_response_bytes_total',
      help: 'Bytes sent to clients (headers and bodies), by route',
      labelNames: ['route'],
      registers,
    });
    this.archiveCache = new Counter({
      name: 'moonbit_registry_archive_requests_total',
      help: 'Archive GETs by how they ended: hit (sent from the store), miss (sent while fetched from an upstream), not_modified (304), absent (404), error (other failures), aborted (cut short)',
      labelNames: ['result'],
      registers,
    });
    this.upstreamRequests = new Counter({
      name: 'moonbit_registry_upstream_requests_total',
      help: 'Requests to upstream sources (each archive attempt, each index fetch), by source and kind',
      labelNames: ['source', 'kind'],
      registers,
    });
    this.upstreamErrors = new Counter({
      name: 'moonbit_registry_upstream_errors_total',
      help: 'Upstream requests that failed (unreachable, timeout, 5xx, bad bytes), by source and kind',
      labelNames: ['source', 'kind'],
      registers,
    });
    this.syncDuration = new Histogram({
      name: 'moonbit_registry_sync_duration_seconds',
      help: 'Index sync duration, by result (ok: every source fetched)',
      labelNames: ['result'],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300],
      registers,
    });
    this.publishes = new Counter({
      name: 'moonbit_registry_publishes_total',
      help: 'POST /api/v0/publish by result: published, unchanged (the same bytes again), unauthorized, forbidden, too_large, invalid, conflict, busy (503), error',
      labelNames: ['result'],
      registers,
    });
    this.shadowedEntries = new Counter({
      name: 'moonbit_registry_shadowed_entries_total',
      help: 'Upstream modules ignored because only published modules may have their names ([hosted] exclusive), counted at each sync that sees them, by source',
      labelNames: ['source'],
      registers,
    });
    new Gauge({
      name: 'moonbit_registry_sync_age_seconds',
      help: 'Seconds since the last successful index sync (absent before the first)',
      registers,
      collect() {
        const last = sources.lastSyncSuccess();
        this.reset();
        if (last !== undefined) this.set((Date.now() - last) / 1000);
      },
    });
    new Gauge({
      name: 'moonbit_registry_git_upload_pack_processes',
      help: 'git upload-pack processes running',
      registers,
      collect() {
        this.set(sources.git().running);
      },
    });
    new Gauge({
      name: 'moonbit_registry_git_queue_length',
      help: 'git requests waiting for an upload-pack slot',
      registers,
      collect() {
        this.set(sources.git().queued);
      },
    });
    new Gauge({
      name: 'moonbit_registry_archives_stored',
      help: 'Archives in data/packages',
      registers,
      async collect() {
        this.set((await sources.archives()).count);
      },
    });
    new Gauge({
      name: 'moonbit_registry_archives_stored_bytes',
      help: 'Bytes of the archives in data/packages',
      registers,
      async collect() {
        this.set((await sources.archives()).bytes);
      },
    });
    new Counter({
      name: 'moonbit_registry_git_cache_requests_total',
      help: 'git requests by where their answer came from: hit (memory), shared (an identical request in flight), miss (git ran), warmup (computed after a new commit before any client asked)',
      labelNames: ['result'],
      registers,
      collect() {
        const stats = sources.gitCache();
        this.reset();
        for (const result of ['hit', 'shared', 'miss', 'warmup'] as const) {
          const count = { hit: stats.hits, shared: stats.shared, miss: stats.misses, warmup: stats.warmups }[
            result
          ];
          this.inc({ result }, count);
        }
      },
    });
    new Counter({
      name: 'moonbit_registry_git_cache_evictions_total',
      help: 'git answers dropped from the cache to make room',
      registers,
      collect() {
        this.reset();
        this.inc(sources.gitCache().evictions);
      },
    });
    new Gauge({
      name: 'moonbit_registry_git_cache_bytes',
      help: 'Bytes of git answers in the cache',
      registers,
      collect() {
        this.set(sources.gitCache().bytes);
      },
    });
    new Gauge({
      name: 'moonbit_registry_git_cache_entries',
      help: 'git answers in the cache',
      registers,
      collect() {
        this.set(sources.gitCache().entries);
      },
    });
    new Gauge({
      name: 'moonbit_registry_git_cache_max_bytes',
      help: 'The cache bound ([server] upload_pack_cache_bytes; 0: off)',
      registers,
      collect() {
        this.set(sources.gitCache().max_bytes);
      },
    });
    // Mirror runs are other processes: their count comes from what they record in data/state.
    new Counter({
      name: 'moonbit_registry_mirror_runs_total',
      help: 'mirror runs recorded in this registry, by outcome (ok, failed, interrupted, error)',
      labelNames: ['outcome'],
      registers,
      async collect() {
        this.reset();
        for (const [outcome, count] of Object.entries(await sources.mirrorRuns()))
          this.inc({ outcome }, count);
      },
    });
  }

  /** `status` is the code sent, or `aborted` for a response cut short. */
  request(route: string, method: string, status: string, seconds: number, bytes: number): void {
    this.requests.inc({ route, method, status });
    this.duration.observe({ route }, seconds);
    if (bytes > 0) this.bytes.inc({ route }, bytes);
  }

  archive(result: ArchiveResult): void {
    this.archiveCache.inc({ result });
  }

  upstream(source: string, kind: 'archive' | 'index', event: 'request' | 'error'): void {
    (event === 'request' ? this.upstreamRequests : this.upstreamErrors).inc({ source, kind });
  }

  publish(result: string): void {
    this.publishes.inc({ result });
  }

  shadowed(source: string): void {
    this.shadowedEntries.inc({ source });
  }

  sync(seconds: number, ok: boolean): void {
    this.syncDuration.observe({ result: ok ? 'ok' : 'failed' }, seconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
