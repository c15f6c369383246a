import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { registryUrl } from '../../config/registry-url.js';
import { LOG_FORMATS, LOG_LEVELS, type RegistryConfig } from '../../config/schema.js';
import { loadConfigFile } from '../../config/toml-file.js';
import { tokenSha256 } from '../../core/access-token.js';
import { parseDuration } from '../../core/duration.js';
import { describeError, RegistryError } from '../../core/errors.js';
import { AccessControl } from '../../server/access-control.js';
import { serverLimits } from '../../server/limits.js';
import { type RunningServer, startServer, type TlsFiles } from '../../server/server.js';
import { resolveAdminToken } from '../../upstream/credentials.js';
import { createLogger, type LogFormat, type LogLevel } from '../logger.js';
import { notice } from '../output.js';
import { openCommandRegistry, parseInteger } from './registry-dir.js';

interface ServeFlags {
  host?: string;
  port?: number;
  proxy?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('serve the index (git smart HTTP) and archives so `moon` can use this registry')
    .option('--host <host>', 'address to listen on (default: [server] host in registry.toml)')
    .option(
      '--port <port>',
      'port to listen on (default: [server] port in registry.toml)',
      parseInteger('--port', 0, 65535),
    )
    .option(
      '--proxy',
      'pull-through: offer every module of the enabled sources and fetch archives on a miss (default: [server] upstream_fallback)',
    )
    .option('--no-proxy', 'serve only what is stored, even if [server] upstream_fallback is on')
    .option('--tls-cert <file>', 'PEM certificate chain: serve HTTPS (default: [server] tls_cert)')
    .option('--tls-key <file>', 'PEM private key for --tls-cert (default: [server] tls_key)')
    .addOption(
      new Option('--log-level <level>', 'log level (default: [server] log_level, info)').choices(LOG_LEVELS),
    )
    .addOption(
      new Option(
        '--log-format <format>',
        'json lines, pretty lines, or auto: pretty on a terminal (default: [server] log_format)',
      ).choices(LOG_FORMATS),
    )
    .addHelpText(
      'after',
      '\nSIGHUP re-reads [server.access] (tokens, allow list) and the TLS certificate and key.\n' +
        'SIGTERM/SIGINT stop accepting, let responses in flight finish ([server] shutdown_timeout), exit 0.',
    )
    .action(async (options: ServeFlags, command: Command) => {
      // Warnings raised while serving (a failed auto_push) go to the server log once it exists.
      let warn = (message: string) => notice(`warning: ${message}`);
      const registry = await openCommandRegistry(command, {
        notice: (message) => notice(`notice: ${message}`),
        warn: (message) => warn(message),
      });
      const { server: serverConfig, mirror: mirrorConfig } = registry.config;
      const logger = createLogger(
        options.logLevel ?? serverConfig.log_level,
        options.logFormat ?? serverConfig.log_format,
      );
      warn = (message) => logger.warn(message);
      const proxy = options.proxy ?? serverConfig.upstream_fallback;
      const tlsPaths = tlsFiles(options, serverConfig, registry.layout.root);
      const tls = tlsPaths ? await readTls(tlsPaths) : undefined;
      const access = new AccessControl(checkedAccess(serverConfig), serverConfig.trusted_proxies);
      const server = await startServer(registry, {
        host: options.host ?? serverConfig.host,
        port: options.port ?? serverConfig.port,
        proxy,
        // Validated by the config schema, so the durations parse.
        syncIntervalMs: mirrorConfig.auto_sync ? parseDuration(mirrorConfig.sync_interval) : undefined,
        adminTokenSha256: adminTokenSha256(serverConfig),
        negativeTtlMs: parseDuration(serverConfig.negative_cache_ttl) ?? 0,
        limits: serverLimits(serverConfig),
        access,
        logger,
        ...(tls ? { tls } : {}),
        ...(serverConfig.base_url ? { baseUrl: registryUrl(serverConfig) } : {}),
      });
      notice(`Serving "${registry.config.registry.name}" at ${server.url}`);
      notice(
        proxy
          ? '  mode: pull-through (every module of the enabled sources; archives fetched on first request)'
          : '  mode: mirror (only what is stored)',
      );
      if (mirrorConfig.auto_sync) notice(`  index sync: every ${mirrorConfig.sync_interval}`);
      notice(`  access: ${describeAccess(serverConfig.access)}`);
      notice(`  clients: MOONCAKES_REGISTRY=${clientUrl(server.publicUrl, access)} moon update`);
      const cleartext = cleartextWarning(serverConfig, server.publicUrl, tls !== undefined);
      if (cleartext) notice(cleartext);
      // One reload at a time, in order: a slow earlier read must not win over a later one.
      let reloading = Promise.resolve();
      process.on('SIGHUP', () => {
        reloading = reloading.then(() => reload(registry.layout.configFile, access, tlsPaths, server));
      });
      await new Promise<void>((resolveStop) => {
        const stop = () => {
          notice('shutting down: no new connections; waiting for responses in flight');
          void server.close().then(resolveStop, resolveStop);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      // A sync cut short may still have git running; it must not keep the process alive.
      process.exit(process.exitCode ?? 0);
    });
}

/**
 * SIGHUP: re-read `[server.access]` (so `token add/remove` take effect) and the TLS files (after
 * a renewal). Anything that fails to load leaves the rules in force as they were.
 */
async function reload(
  configPath: string,
  access: AccessControl,
  tlsPaths: { cert: string; key: string } | undefined,
  server: RunningServer,
): Promise<void> {
  try {
    const { server: config } = (await loadConfigFile(configPath)).config;
    // No tokens left in credentials mode (the last one was revoked): nobody gets in. Refusing
    // the reload instead would keep the revoked token working.
    access.update(config.access, config.trusted_proxies);
    server.setAdminToken(adminTokenSha256(config));
    notice(`SIGHUP: access rules reloaded (${describeAccess(config.access)})`);
    if (config.access.mode === 'credentials' && config.access.tokens.length === 0) {
      notice('warning: [server.access] has no token left: every request is refused (401) until one is added');
    }
  } catch (error) {
    notice(
      `error: SIGHUP: registry.toml could not be read, the access rules in force stay: ${describeError(error)}`,
    );
  }
  if (!tlsPaths) return;
  try {
    server.reloadTls(await readTls(tlsPaths));
    notice('SIGHUP: TLS certificate reloaded');
  } catch (error) {
    notice(`SIGHUP: TLS certificate not reloaded, the old one stays: ${describeError(error)}`);
  }
}

/** Flags win over registry.toml; relative paths in registry.toml are relative to the registry. */
function tlsFiles(
  flags: ServeFlags,
  server: RegistryConfig['server'],
  root: string,
): { cert: string; key: string } | undefined {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new RegistryError('USAGE', '--tls-cert and --tls-key go together');
  }
  if (flags.tlsCert && flags.tlsKey) return { cert: resolve(flags.tlsCert), key: resolve(flags.tlsKey) };
  if (server.tls_cert && server.tls_key) {
    return { cert: resolve(root, server.tls_cert), key: resolve(root, server.tls_key) };
  }
  return undefined;
}

async function readTls(paths: { cert: string; key: string }): Promise<TlsFiles> {
  const read = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch (error) {
      throw new RegistryError('CONFIG', `cannot read the TLS ${what} ${path}: ${(error as Error).message}`);
    }
  };
  return { cert: await read(paths.cert, 'certificate'), key: await read(paths.key, 'key') };
}

function checkedAccess(server: RegistryConfig['server']): RegistryConfig['server']['access'] {
  if (server.access.mode === 'credentials' && server.access.tokens.length === 0) {
    throw new RegistryError('CONFIG', '[server.access] mode is "credentials" but no token exists', {
      hint: 'create one: moonbit-registry token add ci',
    });
  }
  return server.access;
}

function adminTokenSha256(server: RegistryConfig['server']): string | undefined {
  if (server.admin_token_sha256) return server.admin_token_sha256;
  // Secrets read from files often end with a newline: it is not part of the token.
  return server.admin_token ? tokenSha256(resolveAdminToken(server.admin_token).trim()) : undefined;
}

/** Tokens over plain HTTP can be read by anyone on the path: say so, unless TLS is in front. */
function cleartextWarning(
  server: RegistryConfig['server'],
  publicUrl: string,
  tls: boolean,
): string | undefined {
  if (server.access.mode !== 'credentials' || tls || publicUrl.startsWith('https://')) return undefined;
  return 'warning: tokens are accepted over plain HTTP: use --tls-cert/--tls-key, or a TLS proxy with an https base_url';
}

function describeAccess(access: RegistryConfig['server']['access']): string {
  const from = access.allow.length > 0 ? ` from ${access.allow.join(', ')}` : '';
  if (access.mode === 'open') return 'open (anyone who can reach this address)';
  if (access.mode === 'allowlist') return `clients${from}`;
  return `token holders${from} (${access.tokens.length} token${access.tokens.length === 1 ? '' : 's'})`;
}

/** In credentials mode the client URL carries a token; show where it goes, never a real one. */
function clientUrl(publicUrl: string, access: AccessControl): string {
  if (access.mode !== 'credentials') return publicUrl;
  return publicUrl.replace(/^(https?:\/\/)/, '$1<name>:<token>@');
}
