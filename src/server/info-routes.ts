import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { RegistryConfig, SourceConfig } from '../config/schema.js';
import { isHttpSource } from '../config/source-location.js';
import { decodePathSegments } from '../core/archive-url.js';
import { isValidModuleName } from '../core/module-name.js';
import { compareVersions } from '../core/version.js';
import type { ServeMode, SyncReport } from '../registry/index-sync.js';
import type { StatusReport } from '../status/status-report.js';
import type { SourceHealthReport } from '../upstream/source-health.js';
import { notFound, sendJson } from './http-error.js';
import type { IndexCache } from './index-cache.js';
import type { SyncScheduler } from './sync-scheduler.js';
import type { UploadPackCacheStats } from './upload-pack-cache.js';

export interface InfoContext {
  config: RegistryConfig;
  mode: ServeMode;
  index: IndexCache;
  /** The source a served line came from. */
  sourceOf(module: string, version: string, checksum: string): Promise<string | undefined>;
  /** Whether the archive of a line is stored here (pull-through fetches the others on request). */
  isStored(module: string, version: string, checksum: string): Promise<boolean>;
  sync: SyncScheduler | undefined;
  /** The URL clients use: `[server] base_url`, or this server's own (set once listening). */
  publicUrl: string;
  /** What `status` and the status page show. */
  status(): Promise<StatusReport>;
  sources: SourceHealthReport[] | undefined;
  /** The published modules' source: its name, priority and index commit (null: nothing yet). */
  hosted(): Promise<{ name: string; priority: number; commit: string | null }>;
  /** Why there is no index to serve yet (a fresh pull-through server); undefined once there is. */
  starting(): string[] | undefined;
  /** Pull-through downloads in progress. */
  fetching: number;
  /** `git upload-pack` processes running and requests waiting for one. */
  git: { running: number; queued: number; max: number; cache: UploadPackCacheStats };
  logger: Logger | undefined;
}

/**
 * `GET /health`: 200 while this server can serve (its index reads), whatever the upstreams do;
 * 503 when it cannot: `starting` until a fresh pull-through server has its first index (with
 * the reasons), `error` when the index does not read. Each source's state and the sync
 * schedule come along for operators.
 */
export async function handleHealth(ctx: InfoContext, res: ServerResponse, detailed = true): Promise<void> {
  let index: { commit: string | null; modules: number };
  try {
    const snapshot = await ctx.index.snapshot();
    index = { commit: snapshot.commit ?? null, modules: snapshot.modules.size };
  } catch (error) {
    ctx.logger?.error({ err: error }, 'health: the served index cannot be read');
    sendJson(res, 503, { status: 'error', error: 'the served index cannot be read (see the server log)' });
    return;
  }
  const reasons = ctx.starting();
  const [code, status] = reasons ? [503, 'starting'] : [200, 'ok'];
  // A client that may not read the registry learns only whether it is up (load balancers need that).
  if (!detailed) return sendJson(res, code, { status });
  const sync = ctx.sync?.status();
  sendJson(res, code, {
    status,
    ...(reasons ? { reasons } : {}),
    mode: ctx.mode,
    index,
    ...(sync ? { sync: { ...sync, last_run: summarizeRun(sync.last_run) } } : {}),
    ...(ctx.sources ? { sources: ctx.sources } : {}),
    hosted: await ctx.hosted(),
    ...(ctx.mode === 'proxy' ? { fetching: ctx.fetching } : {}),
    git: ctx.git,
  });
}

/** The last sync, without its per-source list (the sources are reported on their own). */
function summarizeRun(run: SyncReport | null) {
  if (!run) return null;
  const { sources: _perSource, ...rest } = run;
  return rest;
}

/** `GET /`: what this registry is and serves. */
export async function handleRoot(ctx: InfoContext, res: ServerResponse): Promise<void> {
  const snapshot = await ctx.index.snapshot();
  let versions = 0;
  for (const entries of snapshot.modules.values()) versions += entries.size;
  sendJson(res, 200, {
    name: ctx.config.registry.name,
    url: ctx.publicUrl,
    usage: `MOONCAKES_REGISTRY=${ctx.publicUrl} moon update`,
    mode: ctx.mode,
    index: { commit: snapshot.commit ?? null, modules: snapshot.modules.size, versions },
    sources: ctx.config.sources.map((source) => publicSource(source, ctx.config.default_source)),
  });
}

/**
 * A source as anyone may see it. Fields are picked one by one so that `auth` (and any field
 * added later) stays private; the config schema already refuses credentials inside URLs.
 */
function publicSource(source: SourceConfig, defaultSource: string | undefined) {
  // Git and bundle sources have placeholder URLs, not worth showing.
  const http = isHttpSource(source);
  return {
    name: source.name,
    type: source.type,
    url: http ? source.url : null,
    index_url: http ? source.index_url : null,
    ...(source.type === 'git'
      ? { git_url: source.git_url, path: source.path ?? null, ref_pattern: source.ref_pattern ?? null }
      : {}),
    priority: source.priority,
    enabled: source.enabled,
    default: source.name === defaultSource,
  };
}

/** Fields of an index line worth showing next to a version, when the line has them. */
const LINE_FIELDS = ['created_at', 'yanked', 'deprecated'] as const;

/** `GET /user/<module>`: the served versions of one module, in semver order, with their sources. */
export async function handleModule(ctx: InfoContext, res: ServerResponse, rawModule: string): Promise<void> {
  const module = decodePathSegments(rawModule)?.join('/');
  if (module === undefined || !isValidModuleName(module)) throw notFound('no such module');
  const entries = (await ctx.index.snapshot()).modules.get(module);
  if (!entries || entries.size === 0) throw notFound(`module ${module} is not served here`);
  const sorted = [...entries.values()].sort((a, b) => compareVersions(a.version, b.version));
  const versions = await Promise.all(
    sorted.map(async (entry) => {
      const line = JSON.parse(entry.raw) as Record<string, unknown>;
      const extra = Object.fromEntries(
        LINE_FIELDS.filter((f) => line[f] !== undefined).map((f) => [f, line[f]]),
      );
      return {
        version: entry.version,
        checksum: entry.checksum,
        source: (await ctx.sourceOf(module, entry.version, entry.checksum)) ?? null,
        stored: await ctx.isStored(module, entry.version, entry.checksum),
        ...extra,
      };
    }),
  );
  sendJson(res, 200, { module, versions });
}
