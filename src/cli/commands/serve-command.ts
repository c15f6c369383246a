import type { Command } from 'commander';
import { openRegistry } from '../../registry/registry.js';
import { startServer } from '../../server/server.js';
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
    .action(async (options: { host?: string; port?: number }, command: Command) => {
      const registry = await openRegistry(registryDir(command));
      const host = options.host ?? registry.config.server.host;
      const port = options.port ?? registry.config.server.port;
      const server = await startServer(registry, { host, port });
      notice(`Serving "${registry.config.registry.name}" at ${server.url}`);
      notice(`  clients: MOONCAKES_REGISTRY=${server.url} moon update`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          notice('shutting down');
          void server.close().then(resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
