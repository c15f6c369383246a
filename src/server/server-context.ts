import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { clusterFor } from '../coordination/cluster.js';
import { HISTORY_CHANNEL } from '../coordination/shared-history.js';
import { parseDuration } from '../core/duration.js';
import { clearDeadTemps, processTempDir } from '../fs/temp-dirs.js';
import { ServedIndex } from '../index/served-index.js';
import { type ServeMode, syncIndexes } from '../registry/index-sync.js';
import { acquireRegistryLock } from '../registry/lock.js';
import { sourceOf } from '../registry/provenance.js';
import { publishProxyIndex } from '../registry/proxy-index.js';
import { enabledSources, type Registry } from '../registry/registry.js';
import { downloadLimits, enabledUpstreams } from '../registry/source-indexes.js';
import { SourcePolicy } from '../registry/source-policy.js';
import { collectStatus, countBySource, type IndexView, storeUsage } from '../status/collect-status.js';
import { DownloadStats } from '../status/download-stats.js';
import { LastDownloads } from '../status/last-downloads.js';
import { readMirrorRunLog } from '../status/mirror-runs.js';
import { type ServerState, writeServerState } from '../status/server-state.js';
import type { StatusReport } from '../status/status-report.js';
import type { ArchiveStore } from '../store/archive-store.js';
import type { AssetStore } from '../store/asset-store.js';
import type { CircuitBreakerOptions } from '../upstream/circuit-breaker.js';
import { UpstreamPool } from '../upstream/upstream-pool.js';
import type { AccessControl } from './access-control.js';
import { AssetPullThrough } from './asset-pull-through.js';
import { ByteBudget } from './byte-budget.js';
import type { PublishContext } from './hosted-routes.js';
import { IndexCache } from './index-cache.js';
import { IndexReadiness } from './index-readiness.js';
import type { InfoContext } from './info-routes.js';
import type { ServerLimits } from './limits.js';
import { ServerMetrics } from './metrics.js';
import { ProcessLimiter } from './process-limiter.js';
import { ProvenanceCache } from './provenance-cache.js';
import { PullThrough } from './pull-through.js';
import { SymbolsRefresher } from './symbols-refresher.js';
import type { SymbolsContext } from './symbols-route.js';
import { SyncScheduler } from './sync-scheduler.js';
import { UploadPackAnswers } from './upload-pack-answers.js';

/** Upload-pack request bodies held at once, in units of `max_request_body`. */
const BODIES_PER_LIMIT = 4;

export interface ServeBehaviour {
  /** Pull-through: list every enabled source's versions, fetch unstored archives on request. */
  proxy: boolean;
  /** Refresh every source's index this often; undefined: only at start (proxy) or on request. */
  syncIntervalMs: number | undefined;
  /** SHA-256 hex of the admin token; undefined turns the admin endpoints off. */
  adminTokenSha256: string | undefined;
  /** Who may read (`[server.access]`). */
  access: AccessControl;
  /** Remember an upstream's 404 for an archive this long. */
  negativeTtlMs: number;
  breaker?: CircuitBreakerOptions;
  /** What one client may cost: git processes, body and header sizes, timeouts. */
  limits: ServerLimits;
}

/** Everything a request handler may need, built once when the server starts. */
export interface ServerContext {
  registry: Registry;
  mode: ServeMode;
  /** The repository served to git clients: data/index, or data/proxy-index in proxy mode. */
  gitDir: string;
  index: IndexCache;
  /** Whether the served index may be cloned yet (a fresh pull-through server waits for its first). */
  readiness: IndexReadiness;
  pool: UpstreamPool | undefined;
  sync: SyncScheduler | undefined;
  pullThrough: PullThrough | undefined;
  /** Prebuilt wasm tools: what is stored, and in proxy mode how the rest is fetched. */
  assets: { store: AssetStore; pullThrough: AssetPullThrough | undefined };
  adminTokenSha256: string | undefined;
  access: AccessControl;
  logger: Logger | undefined;
  info: InfoContext;
  limits: ServerLimits;
  /** Slots for `git upload-pack`, shared by every git request. */
  gitLimiter: ProcessLimiter;
  /** Answers of git upload-pack, cached per index commit. */
  answers: UploadPackAnswers;
  /** Memory for upload-pack request bodies being read or waiting for git. */
  gitBodies: ByteBudget;
  metrics: ServerMetrics;
  downloads: DownloadStats;
  /** `POST /api/v0/publish`. */
  publish: PublishContext;
  /** `/symbols.zip`: the stored copies, and in proxy mode who fetches them on request. */
  symbols: SymbolsContext;
  /** The server is listening at `url`: record it for `status`, start the periodic writes. */
  started(url: string): void;
  close(): Promise<void>;
}

/**
 * Publishes read at once: each holds its upload in memory (up to [hosted] max_archive_size) and
 * the registry lock makes them one at a time anyway.
 */
const MAX_UPLOADS = 4;

/** Live facts and download counts go to data/state this often (and at each sync and shutdown). */
const STATE_WRITE_MS = 60_000;
/** A source whose symbols.zip could not be fetched is asked again after this long, at most. */
const SYMBOLS_RETRY_MS = 30_000;
/** A scan of data/packages is reused this long by /metrics and /status. */
const USAGE_TTL_MS = 30_000;

export async function createServerContext(
  registry: Registry,
  behaviour: ServeBehaviour,
  logger: Logger | undefined,
): Promise<ServerContext> {
  const { layout } = registry;
  const mode: ServeMode = behaviour.proxy ? 'proxy' : 'mirror';
  const served = mode === 'proxy' ? new ServedIndex(layout.proxyIndexDir) : registry.servedIndex;
  // Replicas: start from the shared history, before anything reads or initializes an index.
  const cluster = await clusterFor(layout.lockTarget);
  const caughtUp = await cluster?.history.catchUp().catch((error: unknown) => {
    logger?.warn(
      { err: error },
      'cannot read the shared index history yet; serving the local copy meanwhile',
    );
    return undefined;
  });
  const wantsUpstreams =
    mode === 'proxy' || behaviour.syncIntervalMs !== undefined || behaviour.adminTokenSha256 !== undefined;
  const pool = wantsUpstreams
    ? new UpstreamPool(enabledUpstreams(registry.config, layout), behaviour.breaker, {
        hosted: registry.hosted,
        policy: new SourcePolicy(registry.config),
      })
    : undefined;
  const warn = (message: string) => logger?.warn(message);

  if (pool) {
    // A credential variable that is not set is a configuration error: say so before serving.
    for (const upstream of pool.upstreams) upstream.headers();
    await pool.reload(warn);
  }
  // A proxy with no source index fetched yet would serve an empty index: not ready until the
  // first sync brings one. An older fetched index is served at once, stale, while it syncs.
  // A replica may serve the shared pull-through index before it fetched any source itself.
  const sharedProxyIndex = caughtUp?.heads.has('proxy-index') ?? false;
  const readiness = new IndexReadiness(
    mode !== 'proxy' || !pool || hasIndexToServe(pool) || sharedProxyIndex,
  );
  if (mode === 'proxy' && pool) {
    await served.initialize(registry.config.registry.name);
    // Replicas serve the shared history as it is: only a sync that fetched every source commits.
    if (readiness.ready && !cluster) {
      await publishProxyIndex(served, pool.merged, 'serve start').catch((error: unknown) => {
        // The index published before stays served; the first sync publishes again.
        logger?.warn({ err: error }, 'could not publish the proxy index at start');
      });
    }
  }
  const { limits } = behaviour;
  const gitLimiter = new ProcessLimiter({
    concurrency: limits.maxGitProcesses,
    maxQueue: limits.maxGitQueue,
    maxWaitMs: limits.gitQueueTimeoutMs,
  });
  // Another replica's commit is taken before a request reads the index (coordination/shared-history.ts).
  let followHistory: () => Promise<void> = async () => {};
  const index = new IndexCache(served, cluster ? () => followHistory() : undefined);
  const answers = new UploadPackAnswers({
    gitDir: served.gitDir,
    limiter: gitLimiter,
    logger,
    cacheBytes: limits.uploadPackCacheBytes,
    head: () => index.head(),
  });
  const archiveUsage = cachedUsage(registry.store);
  let lastSyncSuccess: number | undefined;
  const metrics = new ServerMetrics({
    git: () => gitLimiter.counts,
    gitCache: () => answers.cache.stats,
    archives: archiveUsage,
    mirrorRuns: async () => (await readMirrorRunLog(layout)).totals,
    lastSyncSuccess: () => lastSyncSuccess,
  });
  const downloads = new DownloadStats(
    layout.downloadsFile,
    Date.now,
    new LastDownloads(layout.lastDownloadsFile),
  );
  await downloads.load();
  let writeLive: () => Promise<void> = async () => {};

  const sync = pool
    ? new SyncScheduler(
        async (trigger, force) => {
          const started = performance.now();
          let ok = false;
          try {
            const report = await syncIndexes(
              registry,
              pool,
              { mode, proxyIndex: served, trigger, force },
              {
                info: (message) => logger?.info(message),
                warn,
                shadowed: (attempt) => metrics.shadowed(attempt.source),
              },
            );
            for (const source of report.sources) {
              if (source.result === 'fetched' || source.result === 'failed') {
                metrics.upstream(source.name, 'index', 'request');
                if (source.result === 'failed') metrics.upstream(source.name, 'index', 'error');
              }
            }
            ok = report.sources.every((source) => source.result !== 'failed');
            if (ok) lastSyncSuccess = Date.now();
            if (report.index && hasIndexToServe(pool)) readiness.markReady();
            void answers.checkHead();
            return report;
          } finally {
            metrics.sync((performance.now() - started) / 1000, ok);
            void writeLive();
          }
        },
        behaviour.syncIntervalMs,
        logger,
        () => (readiness.ready ? undefined : firstIndexRetryMs(pool)),
      )
    : undefined;
  if (sync && (mode === 'proxy' || behaviour.syncIntervalMs !== undefined)) sync.start();
  let stopFollowing: () => Promise<void> = async () => {};
  /**
   * A writer of this folder killed between its commit and its share left a commit nobody else
   * has. Taking the registry lock puts every copy back at the shared heads (a writer's catch-up);
   * while another writer holds it, that writer will share or put back its own commits itself.
   */
  const dropUnshared = async (repos: string[]) => {
    const lock = await acquireRegistryLock(layout.lockTarget, 'serve: drop unshared commits', {
      brief: true,
    }).catch(() => undefined);
    if (!lock) return;
    await lock.release().catch(() => undefined);
    logger?.warn({ repos }, 'dropped index commits that were never shared with the other replicas');
  };
  if (cluster) {
    followHistory = async () => {
      const { moved, diverged } = await cluster.history.catchUp();
      if (diverged.length > 0) void dropUnshared(diverged);
      if (moved.length === 0) return;
      if (moved.includes('proxy-index')) readiness.markReady();
      void answers.checkHead();
      if (moved.includes('hosted')) await pool?.reload(warn);
    };
    const follow = () =>
      void followHistory().catch((error: unknown) =>
        logger?.warn({ err: error }, 'cannot follow the shared index'),
      );
    stopFollowing = await cluster.coordination.subscribe(HISTORY_CHANNEL, follow, follow);
  }

  let pullThrough: PullThrough | undefined;
  const assetStore = registry.assets;
  let assetPullThrough: AssetPullThrough | undefined;
  let symbolsRefresher: SymbolsRefresher | undefined;
  let tmp: { remove(): Promise<void> } | undefined;
  if (mode === 'proxy' && pool) {
    await clearDeadTemps(layout.tmpDir);
    const dir = await processTempDir(layout.tmpDir);
    tmp = dir;
    pullThrough = new PullThrough({
      registry,
      pool,
      tmpDir: dir.path,
      negativeTtlMs: behaviour.negativeTtlMs,
      logger,
      onUpstream: (source, event) => metrics.upstream(source, 'archive', event),
      ...(cluster ? { coordination: cluster.coordination } : {}),
    });
    assetPullThrough = new AssetPullThrough({
      registry,
      pool,
      store: assetStore,
      tmpDir: dir.path,
      // Most packages have no prebuilt wasm and `moon` asks at every run: remember a 404 until
      // the next sync could have brought a new build (negative_cache_ttl 0 remembers nothing).
      absentTtlMs:
        behaviour.negativeTtlMs === 0 ? 0 : Math.max(behaviour.negativeTtlMs, behaviour.syncIntervalMs ?? 0),
      logger,
      onUpstream: (source, event) => metrics.upstream(source, 'archive', event),
    });
    const intervalMs = parseDuration(registry.config.mirror.sync_interval) ?? 3_600_000;
    symbolsRefresher = new SymbolsRefresher({
      blobs: registry.blobs,
      pool,
      tmpDir: dir.path,
      intervalMs,
      retryMs: Math.min(intervalMs, SYMBOLS_RETRY_MS),
      limits: downloadLimits(registry.config),
      logger,
    });
  }
  const symbols: SymbolsContext = {
    blobs: registry.blobs,
    sources: enabledSources(registry.config).map((source) => source.name),
    refresher: symbolsRefresher,
  };

  const provenance = new ProvenanceCache(layout.provenanceFile);
  /**
   * Which source a served line came from: the merged catalog in proxy mode, provenance.json
   * otherwise. `key` is the object the answers come from: the same while they cannot change.
   */
  const sourceLookup = async () => {
    if (mode === 'proxy' && pool) {
      const merged = pool.merged;
      return {
        key: merged as unknown,
        lookup: (m: string, v: string, c: string) => merged.sourcesWithChecksum(m, v, c)[0]?.source,
      };
    }
    const records = await provenance.get();
    return {
      key: records as unknown,
      lookup: (m: string, v: string, c: string) => sourceOf(records, m, v, c),
    };
  };
  const sourceOfLine = async (module: string, version: string, checksum: string) =>
    (await sourceLookup()).lookup(module, version, checksum);
  // Versions per source change only with the served commit or the lookup's source.
  let servedCounts: { commit: string | undefined; key: unknown; counts: Map<string, number> } | undefined;
  const servedBySource = async (view: IndexView): Promise<Map<string, number>> => {
    const { key, lookup } = await sourceLookup();
    const known = servedCounts;
    if (known && known.commit === view.commit && known.key === key) return known.counts;
    const counts = countBySource(view, lookup);
    servedCounts = { commit: view.commit, key, counts };
    return counts;
  };
  const startedAt = new Date().toISOString();
  let listeningAt = '';
  const liveSync = (): StatusReport['sync'] => {
    const status = sync?.status();
    const run = status?.last_run;
    const failed = run?.sources.filter((s) => s.result === 'failed') ?? [];
    return {
      auto: status?.auto ?? false,
      interval: registry.config.mirror.auto_sync ? registry.config.mirror.sync_interval : null,
      next_run: status?.next_run ?? null,
      last_run: run
        ? {
            at: run.started,
            ok: failed.length === 0,
            changed: run.index?.changed ?? false,
            error: failed.map((s) => `${s.name}: ${s.error ?? 'failed'}`).join('; ') || null,
          }
        : null,
    };
  };
  const liveSources = () =>
    (pool?.healthReports() ?? []).map((report) => ({
      name: report.name,
      state: report.state,
      last_sync: report.last_sync,
      last_error: report.last_error,
      index_commit: report.index_commit,
    }));
  const serverState = (stopped: boolean): ServerState => ({
    pid: process.pid,
    hostname: hostname(),
    started_at: startedAt,
    updated_at: new Date().toISOString(),
    stopped_at: stopped ? new Date().toISOString() : null,
    url: listeningAt,
    mode,
    sync: liveSync(),
    git_cache: answers.cache.stats,
    sources: liveSources(),
  });
  // One write at a time, in order: an older state must never be renamed in after a newer one
  // (after the final "stopped" one in particular).
  let writing = Promise.resolve();
  let stopped = false;
  const writeState = (final: boolean): Promise<void> => {
    writing = writing.then(async () => {
      if (!listeningAt || (stopped && !final)) return;
      if (final) stopped = true;
      await Promise.all([writeServerState(layout, serverState(final)), downloads.flush()]).catch(
        (error: unknown) => logger?.warn({ err: error }, 'could not write data/state (status facts)'),
      );
    });
    return writing;
  };
  writeLive = () => writeState(false);
  let stateTimer: NodeJS.Timeout | undefined;

  const info: InfoContext = {
    config: registry.config,
    mode,
    index,
    sourceOf: sourceOfLine,
    isStored: (module, version, checksum) => registry.store.has(module, version, checksum),
    sync,
    publicUrl: '',
    status: async () => {
      const snapshot = await index.snapshot();
      return collectStatus(
        registry,
        {
          server: {
            running: true,
            pid: process.pid,
            started_at: startedAt,
            url: listeningAt || null,
            git_cache: answers.cache.stats,
          },
          mode,
          sync: liveSync(),
          sources: liveSources(),
          downloads: downloads.hourly(),
        },
        { index: snapshot, servedBySource, archives: archiveUsage, publicUrl: info.publicUrl },
      );
    },
    get sources() {
      return pool?.healthReports();
    },
    starting: () => (readiness.ready || !pool ? undefined : startingReasons(pool)),
    hosted: async () => ({
      name: registry.config.hosted.name,
      priority: registry.config.hosted.priority,
      commit: (await registry.hosted.head()) ?? null,
    }),
    get fetching() {
      return pullThrough?.inProgress ?? 0;
    },
    get git() {
      return { ...gitLimiter.counts, max: limits.maxGitProcesses, cache: answers.cache.stats };
    },
    logger,
  };
  const publish: PublishContext = {
    registry,
    tokens: () => behaviour.access.tokens,
    maxArchiveSize: registry.config.hosted.max_archive_size,
    uploads: new ProcessLimiter({ concurrency: MAX_UPLOADS, maxQueue: 64, maxWaitMs: 60_000 }),
    logger,
    onResult: (result) => metrics.publish(result),
    // The publish moved the indexes on disk; the pull-through view reads the new catalog.
    onPublished: async () => {
      void answers.checkHead();
      await pool?.reload(warn);
    },
  };
  return {
    registry,
    mode,
    publish,
    symbols,
    gitDir: served.gitDir,
    index,
    readiness,
    pool,
    sync,
    pullThrough,
    assets: { store: assetStore, pullThrough: assetPullThrough },
    adminTokenSha256: behaviour.adminTokenSha256,
    access: behaviour.access,
    logger,
    info,
    limits,
    gitLimiter,
    answers,
    // Room for a few bodies of the largest size at once; clients send a few KiB each.
    gitBodies: new ByteBudget(BODIES_PER_LIMIT * limits.maxRequestBody),
    metrics,
    downloads,
    started: (url) => {
      listeningAt = url;
      void writeLive();
      stateTimer = setInterval(() => void writeLive(), STATE_WRITE_MS);
      stateTimer.unref();
      answers.start();
    },
    close: async () => {
      clearInterval(stateTimer);
      await stopFollowing();
      await sync?.stop();
      await answers.close();
      await pool?.close();
      // Downloads clients already have may still be on their way into the store (see settled).
      await pullThrough?.settled();
      await tmp?.remove();
      await writeState(true);
    },
  };
}

/**
 * Some upstream has a fetched index (or none is enabled: then what is published here is the
 * whole truth). Published modules alone are not an index worth cloning in proxy mode.
 */
function hasIndexToServe(pool: UpstreamPool): boolean {
  return pool.upstreams.length === 0 || pool.hasUpstreamIndex;
}

/** The shortest wait after a failed first sync: 1 s, or until the soonest open circuit lets one through. */
function firstIndexRetryMs(pool: UpstreamPool): number {
  const now = Date.now();
  const waits = pool.upstreams.map((upstream) => {
    const retryAt = pool.health(upstream.name)?.breaker.retryAt;
    return retryAt === undefined ? 0 : retryAt - now;
  });
  return Math.max(1000, Math.min(...waits));
}

/** Why a proxy has no index to serve yet: each source still without a fetched index. */
function startingReasons(pool: UpstreamPool): string[] {
  const fetched = new Set(pool.merged.catalogs.map((catalog) => catalog.source));
  return pool.healthReports().flatMap((report) => {
    if (fetched.has(report.name)) return [];
    if (report.state !== 'failing') return [`${report.name}: fetching its index for the first time`];
    const next = report.retry_at ? `; next attempt at ${report.retry_at}` : '; trying again';
    return [`${report.name}: ${report.last_error ?? 'index fetch failed'}${next}`];
  });
}

/** data/packages usage, scanned at most every USAGE_TTL_MS; concurrent askers share one scan. */
function cachedUsage(store: ArchiveStore): () => Promise<{ count: number; bytes: number }> {
  let cached: { at: number; value: Promise<{ count: number; bytes: number }> } | undefined;
  return () => {
    if (!cached || Date.now() - cached.at > USAGE_TTL_MS) {
      cached = { at: Date.now(), value: storeUsage(store) };
    }
    return cached.value;
  };
}
