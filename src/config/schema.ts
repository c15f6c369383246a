import { z } from 'zod';
import { SHA256_HEX } from '../core/access-token.js';
import { parseDuration } from '../core/duration.js';
import { parseAddressBlock } from '../core/ip-address.js';
import { isModuleGlob } from '../core/module-glob.js';
import { isPackageUrlPattern } from '../upstream/archive-location.js';
import { withLegacyUpstream } from './legacy-keys.js';
import { placeholderSourceUrl } from './source-location.js';

/**
 * `registry.toml`, as one schema that gives both the TypeScript types and the validation.
 * The `[[sources]]` keys and `default_source` are the ones in the user's documentation.
 */

export const SOURCE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/**
 * bundle: another registry's index, fed only by `moonbit-registry import` (never fetched).
 * git: one module's git repository, each release tag a version (git-source/).
 */
export const SOURCE_TYPES = ['mooncakes', 'moonbit-registry', 'custom', 'bundle', 'git'] as const;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** auto: readable lines on a terminal, JSON lines otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

const httpUrl = z
  .string()
  .refine((value) => /^https?:\/\/[^/\s]+/i.test(value) && URL.canParse(value), 'must be an http(s) URL')
  // A secret in a URL would be printed by `source list` and logs: it belongs in [sources.auth].
  .refine(
    (value) => !URL.canParse(value) || (new URL(value).username === '' && new URL(value).password === ''),
    {
      message: 'must not contain credentials (use [sources.auth])',
    },
  );

/** A duration such as "30s", "5m", "1h" or "1h30m" (core/duration.ts), kept as written. */
const duration = (min: string, max: string) => {
  const [low, high] = [parseDuration(min) ?? 0, parseDuration(max) ?? Number.POSITIVE_INFINITY];
  return z
    .string()
    .refine((value) => {
      const ms = parseDuration(value);
      return ms !== undefined && ms >= low && ms <= high;
    }, `must be a duration from ${min} to ${max}, such as "30s", "5m" or "1h"`)
    .meta({ format: 'duration' });
};

/** An address ("10.1.2.3", "::1") or CIDR block ("10.0.0.0/8"). */
const addressBlock = z
  .string()
  .refine(
    (value) => parseAddressBlock(value) !== undefined,
    'must be an IP address or CIDR block such as "10.0.0.0/8"',
  );

const sha256Hex = z.string().regex(SHA256_HEX, 'must be 64 lowercase hex digits (a SHA-256)');

/** A glob over full module names (core/module-glob.ts): "owner/name", "owner/*", "owner/**". */
const moduleGlob = z
  .string()
  .refine(isModuleGlob, 'must be a module glob such as "company/*", "company/**" or "owner/name"');

/** `[server.access]`: who may read the registry (server/access-control.ts). */
const AccessSchema = z
  .object({
    mode: z
      .enum(['open', 'allowlist', 'credentials'])
      .default('open')
      .describe('open: anyone; allowlist: addresses in `allow`; credentials: a token from `tokens`.'),
    allow: z
      .array(addressBlock)
      .default([])
      .describe(
        'Addresses and CIDR blocks let in (allowlist), or the only ones that may log in (credentials).',
      ),
    tokens: z
      .array(
        z
          .object({
            name: z.string().regex(SOURCE_NAME_PATTERN, 'letters, digits, "-" and "_"'),
            sha256: sha256Hex,
            created: z.string().optional(),
            publish: z.array(moduleGlob).optional(),
          })
          .strict(),
      )
      .default([])
      .describe(
        'Tokens as { name, sha256, created, publish }, written by `token add NAME [--publish GLOB...]`; `publish` lists the modules it may publish; the tokens themselves are never stored.',
      ),
  })
  .strict()
  .superRefine((access, ctx) => {
    if (access.mode === 'allowlist' && access.allow.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['allow'],
        message: 'mode "allowlist" needs at least one address',
      });
    }
    if (access.mode === 'open' && access.allow.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['mode'],
        message: '"allow" is set but mode is "open"; use mode = "allowlist" or "credentials"',
      });
    }
    const names = new Set<string>();
    access.tokens.forEach((token, i) => {
      if (names.has(token.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['tokens', i, 'name'],
          message: `duplicate token name "${token.name}"`,
        });
      }
      names.add(token.name);
    });
  });

const AuthSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('bearer'), token: z.string().min(1) }).strict(),
  z.object({ type: z.literal('basic'), username: z.string().min(1), password: z.string() }).strict(),
]);

export const SourceSchema = z
  .object({
    name: z
      .string()
      .regex(SOURCE_NAME_PATTERN, 'letters, digits, "-" and "_", starting with a letter or digit')
      .describe('A short name for the source: letters, digits, "-" and "_".'),
    type: z
      .enum(SOURCE_TYPES)
      .default('custom')
      .describe(
        'mooncakes (archives from download.mooncakes.io), moonbit-registry, custom, or bundle (written by `import`: its index comes only from bundles, never from the network).',
      ),
    url: httpUrl
      .optional()
      .describe(
        'Base URL; archives at URL/user/<module%2Fversion>.zip unless package_url_pattern says otherwise (not for git sources).',
      ),
    index_url: httpUrl
      .optional()
      .describe('The git index (smart HTTP), usually URL/git/index (not for git sources).'),
    git_url: z
      .string()
      .min(1)
      .refine(
        (value) => !URL.canParse(value) || new URL(value).password === '',
        'must not contain a password (use [sources.auth])',
      )
      .optional()
      .describe('type = "git": the module\'s repository, any URL git fetches (https, ssh, file).'),
    ref_pattern: z
      .string()
      .min(1)
      .optional()
      .describe(
        'type = "git": a glob over tag names (default: every tag that is a semver version, with or without a leading v); the version is the one the tag name ends in.',
      ),
    path: z
      .string()
      .refine(
        (value) => value.split('/').every((segment) => segment !== '..') && !value.startsWith('/'),
        'must be a folder inside the repository',
      )
      .optional()
      .describe('type = "git": the module\'s folder inside the repository (default: its root).'),
    index_type: z
      .literal('git', {
        error: (issue) =>
          issue.input === 'http'
            ? '"http" indexes are not supported: `moon` reads the index only through git (smart HTTP, PROTOCOL.md 2), and moonbit-registry-tools never implemented them either; set index_type = "git" and index_url to the registry\'s git index (usually URL/git/index)'
            : 'must be "git"',
      })
      .default('git')
      .describe('Only "git": `moon` reads indexes through git.'),
    enabled: z
      .boolean()
      .default(true)
      .describe('A disabled source is not fetched and its versions leave the served index.'),
    priority: z
      .number()
      .int()
      .min(0)
      .max(1_000_000)
      .default(100)
      .describe('Lower number wins when two sources have the same module@version.'),
    // Placeholders are replaced in upstream/archive-location.ts.
    package_url_pattern: z
      .string()
      .refine(
        isPackageUrlPattern,
        'must start with {url} or http(s):// and contain {key}, or {version} with {module} or with {username} and {name}',
      )
      .optional()
      .describe(
        'Archive URL template with {url}, {key} (module/version, encoded), {module}, {username} (the owner), {name} and {version}; ${...} works too.',
      ),
    auth: AuthSchema.optional().describe(
      '[sources.auth]: type = "bearer" with token, or "basic" with username and password; ${VAR} reads the environment.',
    ),
    symbols_url: httpUrl
      .optional()
      .describe(
        "Where this source's editor symbols are (default: URL/symbols.zip; download.mooncakes.io's for mooncakes.io).",
      ),
    connect_timeout: duration('100ms', '10m')
      .optional()
      .describe('Time to connect to this source (default: [mirror] timeout_seconds, at most 10s).'),
    read_timeout: duration('100ms', '1h')
      .optional()
      .describe('Time this source may stay silent mid-answer (default: [mirror] timeout_seconds).'),
    include: z
      .array(moduleGlob)
      .optional()
      .describe('Module globs this source may provide; others it lists are ignored (default: all).'),
    exclude: z
      .array(moduleGlob)
      .optional()
      .describe('Module globs this source may not provide, even when `include` matches.'),
  })
  .strict()
  .superRefine((source, ctx) => {
    const git = source.type === 'git';
    if (git && source.git_url === undefined) {
      ctx.addIssue({ code: 'custom', path: ['git_url'], message: 'a git source needs git_url' });
    }
    for (const key of ['git_url', 'ref_pattern', 'path'] as const) {
      if (!git && source[key] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'only for sources of type "git"' });
      }
    }
    for (const key of ['url', 'index_url'] as const) {
      if (!git && source[key] === undefined) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'required (an http(s) URL)' });
      }
    }
  })
  // A git source has no URLs of its own: placeholders, never fetched.
  .transform((source) => {
    const url = source.url ?? placeholderSourceUrl(source.name, 'git-source');
    return { ...source, url, index_url: source.index_url ?? `${url}/git/index` };
  });

/** `[hosted]`: the source of modules published to this registry (hosted/). */
const HostedSchema = z
  .object({
    name: z
      .string()
      .regex(SOURCE_NAME_PATTERN, 'letters, digits, "-" and "_", starting with a letter or digit')
      .default('local')
      .describe('The source name of published modules (in `source list`, /status and the web UI).'),
    priority: z
      .number()
      .int()
      .min(0)
      .max(1_000_000)
      .default(0)
      .describe("Like a source's priority; 0 puts published versions above every upstream."),
    exclusive: z
      .array(moduleGlob)
      .default([])
      .describe(
        'Module globs only published modules may have: no upstream entry for them is ever served (dependency confusion).',
      ),
    max_archive_size: z
      .number()
      .int()
      .min(1024)
      .max(4 * 1024 * 1024 * 1024)
      .default(64 * 1024 * 1024)
      .describe('Largest module zip a publish may upload, in bytes (413 beyond).'),
    max_entries: z
      .number()
      .int()
      .min(1)
      .max(1_000_000)
      .default(10_000)
      .describe('Most files and folders a published zip may hold.'),
    max_uncompressed_size: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024 * 1024)
      .default(512 * 1024 * 1024)
      .describe('Most bytes a published zip may unpack to (zip bombs).'),
  })
  .strict();

/** `[gc]`: what `moonbit-registry gc` must leave alone. */
const GcSchema = z
  .object({
    keep: z
      .array(moduleGlob)
      .default([])
      .describe('Module globs gc never removes archives or assets of, referenced or not.'),
  })
  .strict();

/**
 * `[git]`: where `sync --push` (and auto_push) sends the served index, and where `sync --pull`
 * takes it from. Any URL git can use; credentials only in `[git.auth]`.
 */
const GitSchema = z
  .object({
    remote_url: z
      .string()
      .default('')
      .refine(
        (value) => !URL.canParse(value) || new URL(value).password === '',
        'must not contain a password (use [git.auth])',
      )
      .refine((value) => !/[\s\0]/.test(value) && !value.startsWith('-'), 'must be a git URL or path')
      .describe('The git remote of the served index ("" = none): https, ssh, git, file URL or a path.'),
    branch: z
      .string()
      .regex(
        /^(?!-)(?!.*\.\.)(?!.*\/\/)(?!.*@\{)[A-Za-z0-9._/-]+(?<![./])(?<!\.lock)$/,
        'must be a git branch name',
      )
      .default('main')
      .describe('The branch of remote_url that holds the index.'),
    auto_push: z
      .boolean()
      .default(false)
      .describe('Push after every change of the served index (mirror, publish, yank, sync).'),
    auth: AuthSchema.optional().describe(
      '[git.auth]: like [sources.auth], for http(s) remotes; ${VAR} reads the environment.',
    ),
  })
  .strict();

/**
 * `[storage]`: where archives, prebuilt wasm and symbols live. `fs` is data/ itself; `s3` is a
 * bucket shared by replicas (store/blob/). Credentials may be ${VAR}s, resolved when the store
 * opens, so the secret is never written anywhere; without them the S3 client's own chain
 * (AWS_* variables, profiles, instance roles) applies.
 */
const StorageSchema = z
  .object({
    type: z
      .enum(['fs', 's3'])
      .default('fs')
      .describe('"fs": data/ (the default); "s3": an S3-compatible bucket.'),
    endpoint: httpUrl.optional().describe('S3 endpoint URL (MinIO, R2, Ceph); omit for AWS S3.'),
    region: z.string().min(1).default('us-east-1').describe('S3 region.'),
    bucket: z
      .string()
      .regex(
        /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
        'must be an S3 bucket name (3-63 lowercase letters, digits, dots, dashes)',
      )
      .optional()
      .describe('The bucket (type = "s3").'),
    prefix: z
      .string()
      .regex(/^([A-Za-z0-9._-]+\/)*$/, 'must be folder names each ending in "/", such as "registry/"')
      .default('')
      .describe('Key prefix inside the bucket, such as "team-a/".'),
    force_path_style: z
      .boolean()
      .default(false)
      .describe('Path-style URLs (endpoint/bucket/key), as MinIO and s3rver need.'),
    access_key_id: z.string().min(1).optional().describe('Access key id (may use ${VAR}).'),
    secret_access_key: z.string().min(1).optional().describe('Secret key (may use ${VAR}; never printed).'),
    redirect: z
      .boolean()
      .default(false)
      .describe('Answer archive downloads with a short-lived presigned redirect to the bucket.'),
  })
  .strict()
  .superRefine((storage, ctx) => {
    if (storage.type === 's3' && storage.bucket === undefined) {
      ctx.addIssue({ code: 'custom', path: ['bucket'], message: 'type = "s3" needs a bucket' });
    }
    if ((storage.access_key_id === undefined) !== (storage.secret_access_key === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [storage.access_key_id === undefined ? 'access_key_id' : 'secret_access_key'],
        message: 'access_key_id and secret_access_key go together',
      });
    }
  });

/** `[coordination]`: the Redis that replicas share (locks, single flight, index head). */
const CoordinationSchema = z
  .object({
    redis_url: z
      .string()
      .regex(
        /^(rediss?:\/\/.+|\$\{[A-Za-z_][A-Za-z0-9_]*\})$/,
        'must be a redis:// or rediss:// URL (or ${VAR})',
      )
      .optional()
      .describe('redis://host:port of the Redis replicas share (may use ${VAR}); none: one process.'),
  })
  .strict();

/** The file's tables as written; ConfigSchema adds what the legacy [upstream] implies. */
export const ConfigObjectSchema = z
  .object({
    registry: z
      .object({
        name: z
          .string()
          .min(1)
          .default('moonbit-registry')
          .describe('The name shown to clients and in the index commits.'),
        data_dir: z
          .string()
          .min(1)
          .refine((value) => !value.includes('\0'), 'must be a folder path')
          .default('data')
          .describe('Where the index, archives and state live, relative to the registry folder.'),
      })
      .strict()
      .prefault({}),
    upstream: z
      .object({
        enabled: z.boolean().default(true),
        url: httpUrl,
        index_url: httpUrl.optional(),
      })
      .strict()
      .optional()
      .describe(
        "moonbit-registry-tools' single source, before [[sources]]: used as a source named mooncakes (or upstream); `config migrate` rewrites it.",
      ),
    default_source: z
      .string()
      .optional()
      .describe('The source `mirror` matches patterns against without -s.'),
    server: z
      .object({
        host: z
          .string()
          .min(1)
          .default('127.0.0.1')
          .describe('Address to listen on (0.0.0.0: every interface).'),
        port: z.number().int().min(0).max(65535).default(8080).describe('Port to listen on.'),
        upstream_fallback: z
          .boolean()
          .default(false)
          .describe('Pull-through: serve every module of the enabled sources, fetching archives on a miss.'),
        negative_cache_ttl: duration('0s', '1d')
          .default('30s')
          .describe('How long an upstream\'s "no such archive" is remembered before asking again.'),
        first_index_wait: duration('0s', '10m')
          .default('20s')
          .describe(
            'Pull-through with no index fetched yet: requests that need the index wait this long for the first one, then get 503 with Retry-After.',
          ),
        admin_token: z
          .string()
          .min(1)
          .optional()
          .describe('Bearer token for POST /admin/sync (may use ${VAR}); the endpoint is off without it.'),
        admin_token_sha256: sha256Hex
          .optional()
          .describe('The same, stored as its SHA-256 (`moonbit-registry token add --admin`).'),
        base_url: httpUrl
          .refine((value) => !/[?#]/.test(value), 'must not have a query or fragment')
          .optional()
          .describe(
            'The URL clients use (behind a reverse proxy, its https URL): shown in links and usage lines.',
          ),
        tls_cert: z
          .string()
          .min(1)
          .optional()
          .describe('PEM certificate chain and key: serve HTTPS (paths relative to the registry folder).'),
        tls_key: z.string().min(1).optional().describe('The private key for tls_cert.'),
        trusted_proxies: z
          .array(addressBlock)
          .default([])
          .describe('Proxies whose X-Forwarded-For names the client (for `[server.access] allow`).'),
        log_level: z.enum(LOG_LEVELS).default('info').describe('Server log level (serve --log-level).'),
        log_format: z
          .enum(LOG_FORMATS)
          .default('auto')
          .describe('json lines, pretty lines, or auto: pretty on a terminal.'),
        shutdown_timeout: duration('0s', '10m')
          .default('10s')
          .describe('On SIGTERM/SIGINT, responses in flight get this long to finish.'),
        access: AccessSchema.prefault({}).describe('[server.access]: who may read this registry.'),
        // What one client may cost the server (server/limits.ts keeps the same defaults).
        max_git_processes: z
          .number()
          .int()
          .min(1)
          .max(256)
          .default(8)
          .describe('`git upload-pack` processes at once; further git requests wait in line.'),
        max_git_queue: z
          .number()
          .int()
          .min(0)
          .max(10_000)
          .default(64)
          .describe('Git requests that may wait; one more gets 503 with Retry-After.'),
        git_queue_timeout: duration('0s', '10m')
          .default('30s')
          .describe('A git request that waited this long gets 503 with Retry-After.'),
        upload_pack_cache_bytes: z
          .number()
          .int()
          .min(0)
          .max(64 * 1024 ** 3)
          .default(64 * 1024 * 1024)
          .describe(
            'Memory for answers of `git upload-pack` (clones, pulls, ref lists), reused per index commit; 0 turns the cache off.',
          ),
        max_request_body: z
          .number()
          .int()
          .min(1024)
          .max(1024 ** 3)
          .default(10 * 1024 * 1024)
          .describe(
            'Bytes of an upload-pack request body, as sent and after gunzip (413 beyond); bodies being read or waiting for git share 4 times this (503 with Retry-After beyond).',
          ),
        max_header_size: z
          .number()
          .int()
          .min(1024)
          .max(1024 * 1024)
          .default(16 * 1024)
          .describe('Bytes of the request line and headers (431 beyond).'),
        headers_timeout: duration('100ms', '10m')
          .default('10s')
          .describe('The request line and headers must arrive within this (408 beyond; slowloris).'),
        request_timeout: duration('100ms', '1h')
          .default('1m')
          .describe('The whole request, body included, must arrive within this.'),
        keep_alive_timeout: duration('100ms', '10m')
          .default('5s')
          .describe('An idle keep-alive connection is closed after this.'),
        idle_timeout: duration('1s', '24d')
          .default('5m')
          .describe('A connection that neither sends nor reads for this long is cut.'),
        smart_http: z
          .object({ enabled: z.boolean().optional(), git_http_backend_path: z.string().optional() })
          .strict()
          .optional()
          .describe(
            "moonbit-registry-tools' switch: accepted and ignored, the server always speaks smart HTTP.",
          ),
      })
      .strict()
      .prefault({}),
    mirror: z
      .object({
        concurrency: z
          .number()
          .int()
          .min(1)
          .max(256)
          .default(32)
          .describe('Archive downloads in flight at once.'),
        retries: z
          .number()
          .int()
          .min(0)
          .max(10)
          .default(3)
          .describe('Further attempts after a failed download (5xx, reset, timeout, short body).'),
        timeout_seconds: z
          .number()
          .int()
          .min(1)
          .max(3600)
          .default(30)
          .describe('Connect/response/idle timeout for one request, and idle timeout for git.'),
        max_archive_size: z
          .number()
          .int()
          .min(1024)
          .default(512 * 1024 * 1024)
          .describe('Largest archive accepted from an upstream, in bytes; bigger ones are refused.'),
        archive_timeout: duration('1s', '1d')
          .default('10m')
          .describe('Longest one archive download may take, body included.'),
        auto_sync: z
          .boolean()
          .default(false)
          .describe("`serve` refreshes every source's index in the background every sync_interval."),
        // Node's timers hold at most 2^31 - 1 ms (24.8 days); a longer delay would fire at once.
        sync_interval: duration('1s', '24d')
          .default('1h')
          .describe('How often auto_sync runs: "30s", "5m", "1h", "1h30m" (at most "24d").'),
        packages: z
          .array(moduleGlob)
          .default([])
          .describe(
            'Module globs `mirror` mirrors when given none (from default_source); a mirror-mode auto_sync keeps them current.',
          ),
      })
      .strict()
      .prefault({}),
    sources: z
      .array(SourceSchema)
      .default([])
      .describe('[[sources]]: the upstream registries, one table each.'),
    hosted: HostedSchema.prefault({}),
    git: GitSchema.prefault({}),
    gc: GcSchema.prefault({}),
    storage: StorageSchema.prefault({}),
    coordination: CoordinationSchema.prefault({}),
  })
  .strict();

export const ConfigSchema = ConfigObjectSchema.transform(withLegacyUpstream).superRefine((config, ctx) => {
  const { server } = config;
  if (config.coordination.redis_url !== undefined && config.storage.type !== 's3') {
    ctx.addIssue({
      code: 'custom',
      path: ['coordination', 'redis_url'],
      message: 'replicas share their archives and index history through a bucket: set [storage] type = "s3"',
    });
  }
  if ((server.tls_cert === undefined) !== (server.tls_key === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: ['server', server.tls_cert === undefined ? 'tls_cert' : 'tls_key'],
      message: 'tls_cert and tls_key go together',
    });
  }
  if (server.admin_token !== undefined && server.admin_token_sha256 !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['server', 'admin_token_sha256'],
      message: 'set admin_token or admin_token_sha256, not both',
    });
  }
  const seen = new Set<string>();
  config.sources.forEach((source, i) => {
    if (seen.has(source.name)) {
      ctx.addIssue({
        code: 'custom',
        path: ['sources', i, 'name'],
        message: `duplicate source name "${source.name}"`,
      });
    }
    seen.add(source.name);
  });
  if (seen.has(config.hosted.name)) {
    ctx.addIssue({
      code: 'custom',
      path: ['hosted', 'name'],
      message: `"${config.hosted.name}" is also a [[sources]] name: published modules need a name of their own`,
    });
  }
  if (config.default_source !== undefined && !seen.has(config.default_source)) {
    ctx.addIssue({
      code: 'custom',
      path: ['default_source'],
      message: `names no configured source ("${config.default_source}")`,
    });
  }
});

export type RegistryConfig = z.infer<typeof ConfigSchema>;
export type SourceConfig = z.infer<typeof SourceSchema>;
export type AccessConfig = z.infer<typeof AccessSchema>;
export type AccessToken = AccessConfig['tokens'][number];
export type HostedConfig = z.infer<typeof HostedSchema>;
export type SourceAuth = z.infer<typeof AuthSchema>;
export type SourceType = (typeof SOURCE_TYPES)[number];
export type StorageConfig = z.infer<typeof StorageSchema>;
export type CoordinationConfig = z.infer<typeof CoordinationSchema>;
