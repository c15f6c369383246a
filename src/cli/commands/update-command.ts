import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { registryUrl } from '../../config/registry-url.js';
import { trimTrailingSlash } from '../../core/archive-url.js';
import { RegistryError } from '../../core/errors.js';
import { notice } from '../output.js';
import { openCommandRegistry } from './registry-dir.js';

export function registerUpdateCommand(program: Command): void {
  program
    .command('update')
    .description('run `moon update` against this registry (MOONCAKES_REGISTRY set from [server])')
    .option('--registry <url>', 'use this registry URL instead')
    .option('--mooncakes', 'use the official mooncakes.io (MOONCAKES_REGISTRY unset)', false)
    .action(async (options: { registry?: string; mooncakes: boolean }, command: Command) => {
      if (options.registry && options.mooncakes) {
        throw new RegistryError('USAGE', '--registry and --mooncakes exclude each other');
      }
      const env = { ...process.env };
      if (options.mooncakes) {
        delete env.MOONCAKES_REGISTRY;
        notice('running `moon update` against mooncakes.io');
      } else {
        const url = options.registry ?? registryUrl((await openCommandRegistry(command)).config.server);
        env.MOONCAKES_REGISTRY = trimTrailingSlash(url);
        notice(`running \`moon update\` with MOONCAKES_REGISTRY=${env.MOONCAKES_REGISTRY}`);
      }
      process.exitCode = await runMoonUpdate(env);
    });
}

function runMoonUpdate(env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('moon', ['update'], { env, stdio: 'inherit' });
    child.on('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'ENOENT'
          ? new RegistryError('NOT_FOUND', '`moon` is not installed (not found on PATH)', {
              hint: 'install the MoonBit toolchain, or point it at the registry yourself: MOONCAKES_REGISTRY=URL moon update',
            })
          : error,
      );
    });
    child.on('close', (code) => resolve(code ?? 1));
  });
}
