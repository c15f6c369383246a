import { mkdir } from 'node:fs/promises';
import { PRESETS } from '../config/presets.js';
import { parseConfigText } from '../config/toml-file.js';
import { RegistryError } from '../core/errors.js';
import { writeFileAtomic } from '../fs/atomic-write.js';
import { pathExists } from '../fs/path-exists.js';
import { ServedIndex } from '../index/served-index.js';
import { ensureIdentity } from '../transfer/registry-identity.js';
import { type RegistryLayout, registryLayout } from './layout.js';

export interface InitOptions {
  name: string;
  force: boolean;
}

/**
 * Creates `registry.toml` (mooncakes.io preset as the default source) and `data/` with an
 * initialized served index. With force, an existing registry.toml is replaced; data/ is kept
 * (the served index only moves forward, archives stay valid).
 */
export async function initRegistry(dir: string, options: InitOptions): Promise<RegistryLayout> {
  const layout = registryLayout(dir);
  if (!options.force && (await pathExists(layout.configFile))) {
    throw new RegistryError('EXISTS', `${layout.configFile} already exists`, {
      hint: 'pass --force to overwrite it (data/ is kept)',
    });
  }
  const text = initialConfig(options.name);
  parseConfigText(layout.configFile, text); // our own template must always validate
  await mkdir(layout.packagesDir, { recursive: true });
  await mkdir(layout.sourcesDir, { recursive: true });
  await new ServedIndex(layout.indexDir).initialize(options.name);
  // Bundles name the registry they come from by this id (export/import); --force keeps it.
  await ensureIdentity(layout.identityFile);
  await writeFileAtomic(layout.configFile, text);
  return layout;
}

function initialConfig(name: string): string {
  const preset = PRESETS.mooncakes;
  return `# moonbit-registry configuration: edit by hand or with \`moonbit-registry source ...\` / \`config\`.
default_source = "mooncakes"

[registry]
name = ${JSON.stringify(name)}

[server]
host = "127.0.0.1"
port = 8080
upstream_fallback = false   # true: pull-through, fetch what is not stored on request (serve --proxy)
negative_cache_ttl = "30s"  # how long an upstream 404 for an archive is remembered
# admin_token = "\${REGISTRY_ADMIN_TOKEN}"  # enables POST /admin/sync
# base_url = "https://registry.example.com"  # the URL clients use, e.g. behind a reverse proxy
# tls_cert = "tls/cert.pem"  # serve HTTPS (with tls_key), or serve --tls-cert/--tls-key
# tls_key = "tls/key.pem"
shutdown_timeout = "10s"  # on SIGTERM, responses in flight get this long to finish

[server.access]
mode = "open"  # "allowlist": only the addresses in allow; "credentials": a token (token add NAME)
# allow = ["10.0.0.0/8", "192.168.0.0/16"]

[mirror]
concurrency = 32      # archive downloads in flight
retries = 3           # further attempts after a 5xx, reset, timeout or short body
timeout_seconds = 30  # per request, and for git without progress
auto_sync = false     # serve refreshes the sources' indexes every sync_interval
sync_interval = "1h"  # "30s", "5m", "1h", "1h30m"

# Modules published to this registry (moon publish, moonbit-registry publish): a source of their own.
[hosted]
name = "local"
priority = 0          # lower number wins: 0 puts published (and patched) versions above every upstream
exclusive = []        # module globs no upstream may provide (dependency confusion), e.g. ["company/*"]

# Sources are merged by priority: lower number wins when two have the same module@version.
[[sources]]
name = "mooncakes"
type = "${preset.type}"
url = "${preset.url}"
index_url = "${preset.index_url}"
index_type = "${preset.index_type}"
enabled = true
priority = ${preset.priority}
`;
}
