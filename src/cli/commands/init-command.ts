import type { Command } from 'commander';
import { initRegistry } from '../../registry/init-registry.js';
import { printLine } from '../output.js';
import { registryDir } from './registry-dir.js';

export function registerInitCommand(program: Command): void {
  program
    .command('init')
    .description('create a registry: registry.toml (mooncakes.io as default source) and data/')
    .argument('[dir]', 'folder to create the registry in (default: -d/--dir, else the current folder)')
    .option('--name <name>', 'registry name shown to clients', 'moonbit-registry')
    .option('-f, --force', 'overwrite an existing registry.toml (data/ is kept)', false)
    .action(async (dir: string | undefined, options: { name: string; force: boolean }, command: Command) => {
      const layout = await initRegistry(dir ?? registryDir(command), options);
      printLine(`Initialized registry "${options.name}" in ${layout.root}`);
      printLine(`  config: ${layout.configFile}`);
      printLine(`  index:  ${layout.indexDir} (git, branch main)`);
      printLine(`  archives: ${layout.packagesDir}`);
      printLine('Next: moonbit-registry mirror "moonbitlang/*" && moonbit-registry serve');
    });
}
