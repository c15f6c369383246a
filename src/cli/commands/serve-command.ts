import type { Command } from 'commander';
import { parseDuration } from '../../core/duration.js';
import { openRegistry } from '../../registry/registry.js';
import { serverLimits } from '../../server/limits.js';
import { startServer } from '../../server/server.js';
import { resolveAdminToken } from '../../upstream/credentials.js';
import { notice } from '../output.js';
import { parseInteger, registryDir } from './registry-dir.js';

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
    .action(async (options: { host?: string; port?: number; proxy?: boolean }, command: Command) => {
      const registry = await openRegistry(registryDir(command));
      const { server: serverConfig, mirror: mirrorConfig } = registry.config;
      const proxy = options.proxy ?? serverConfig.upstream_fallback;
      const server = await startServer(registry, {
        host: options.host ?? serverConfig.host,
        port: options.port ?? serverConfig.port,
        proxy,
        // Validated by the config schema, so the durations parse.
        syncIntervalMs: mirrorConfig.auto_sync ? parseDuration(mirrorConfig.sync_interval) : undefined,
        adminToken: serverConfig.admin_token ? resolveAdminToken(serverConfig.admin_token) : undefined,
        negativeTtlMs: parseDuration(serverConfig.negative_cache_ttl) ?? 0,
        limits: serverLimits(serverConfig),
      });
      notice(`Serving "${registry.config.registry.name}" at ${server.url}`);
      notice(
        proxy
          ? '  mode: pull-through (every module of the enabled sources; archives fetched on first request)'
          : '  mode: mirror (only what is stored)',
      );
      if (mirrorConfig.auto_sync) notice(`  index sync: every ${mirrorConfig.sync_interval}`);
      notice(`  clients: MOONCAKES_REGISTRY=${server.url} moon update`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          notice('shutting down');
          void server.close().then(resolve, resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      // A sync cut short may still have git running; it must not keep the process alive.
      process.exit(process.exitCode ?? 0);
    });
}
