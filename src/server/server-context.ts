import type { Logger } from 'pino';
import { clearDeadTemps, processTempDir } from '../fs/temp-dirs.js';
import { ServedIndex } from '../index/served-index.js';
import { type ServeMode, syncIndexes } from '../registry/index-sync.js';
import { sourceOf } from '../registry/provenance.js';
import { publishProxyIndex } from '../registry/proxy-index.js';
import type { Registry } from '../registry/registry.js';
import { enabledUpstreams } from '../registry/source-indexes.js';
import type { CircuitBreakerOptions } from '../upstream/circuit-breaker.js';
import { UpstreamPool } from '../upstream/upstream-pool.js';
import type { AccessControl } from './access-control.js';
import { IndexCache } from './index-cache.js';
import type { InfoContext } from './info-routes.js';
import type { ServerLimits } from './limits.js';
import { ProcessLimiter } from './process-limiter.js';
import { ProvenanceCache } from './provenance-cache.js';
import { PullThrough } from './pull-through.js';
import { SyncScheduler } from './sync-scheduler.js';

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
  pool: UpstreamPool | undefined;
  sync: SyncScheduler | undefined;
  pullThrough: PullThrough | undefined;
  adminTokenSha256: string | undefined;
  access: AccessControl;
  logger: Logger | undefined;
  info: InfoContext;
  limits: ServerLimits;
  /** Slots for `git upload-pack`, shared by every git request. */
  gitLimiter: ProcessLimiter;
  close(): Promise<void>;
}

export async function createServerContext(
  registry: Registry,
  behaviour: ServeBehaviour,
  logger: Logger | undefined,
): Promise<ServerContext> {
  const { layout } = registry;
  const mode: ServeMode = behaviour.proxy ? 'proxy' : 'mirror';
  const served = mode === 'proxy' ? new ServedIndex(layout.proxyIndexDir) : registry.servedIndex;
  const wantsUpstreams =
    mode === 'proxy' || behaviour.syncIntervalMs !== undefined || behaviour.adminTokenSha256 !== undefined;
  const pool = wantsUpstreams
    ? new UpstreamPool(enabledUpstreams(registry.config, layout), behaviour.breaker)
    : undefined;
  const warn = (message: string) => logger?.warn(message);

  if (pool) {
    // A credential variable that is not set is a configuration error: say so before serving.
    for (const upstream of pool.upstreams) upstream.headers();
    await pool.reload(warn);
  }
  if (mode === 'proxy' && pool) {
    // Serve what the last fetched indexes say right away; the first sync then brings news.
    await served.initialize(registry.config.registry.name);
    await publishProxyIndex(served, pool.merged, 'serve start').catch((error: unknown) => {
      // The index published before stays served; the first sync publishes again.
      logger?.warn({ err: error }, 'could not publish the proxy index at start');
    });
  }
  const sync = pool
    ? new SyncScheduler(
        (trigger, force) =>
          syncIndexes(
            registry,
            pool,
            { mode, proxyIndex: served, trigger, force },
            {
              info: (message) => logger?.info(message),
              warn,
            },
          ),
        behaviour.syncIntervalMs,
        logger,
      )
    : undefined;
  if (sync && (mode === 'proxy' || behaviour.syncIntervalMs !== undefined)) sync.start();

  let pullThrough: PullThrough | undefined;
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
    });
  }

  const { limits } = behaviour;
  const gitLimiter = new ProcessLimiter({
    concurrency: limits.maxGitProcesses,
    maxQueue: limits.maxGitQueue,
    maxWaitMs: limits.gitQueueTimeoutMs,
  });
  const index = new IndexCache(served);
  const provenance = new ProvenanceCache(layout.provenanceFile);
  const info: InfoContext = {
    config: registry.config,
    mode,
    index,
    sourceOf: async (module, version, checksum) => {
      if (mode === 'proxy' && pool) {
        return pool.merged.sourcesWithChecksum(module, version, checksum)[0]?.source;
      }
      return sourceOf(await provenance.get(), module, version, checksum);
    },
    isStored: (module, version, checksum) => registry.store.has(module, version, checksum),
    sync,
    publicUrl: '',
    get sources() {
      return pool?.healthReports();
    },
    get fetching() {
      return pullThrough?.inProgress ?? 0;
    },
    get git() {
      return { ...gitLimiter.counts, max: limits.maxGitProcesses };
    },
    logger,
  };
  return {
    registry,
    mode,
    gitDir: served.gitDir,
    index,
    pool,
    sync,
    pullThrough,
    adminTokenSha256: behaviour.adminTokenSha256,
    access: behaviour.access,
    logger,
    info,
    limits,
    gitLimiter,
    close: async () => {
      await sync?.stop();
      await pool?.close();
      await tmp?.remove();
    },
  };
}
