import type { Command } from 'commander';
import { rebuildIndex } from '../../registry/rebuild-index.js';
import { notice, printLine } from '../output.js';
import { openCommandRegistry } from './registry-dir.js';

export function registerIndexCommand(program: Command): void {
  const index = program.command('index').description('maintain the served index');
  index
    .command('rebuild')
    .description('recompute the served index from fetched source indexes and archives on disk (no network)')
    .action(async (_options: unknown, command: Command) => {
      const registry = await openCommandRegistry(command);
      const outcome = await rebuildIndex(registry, { info: notice, warn: (m) => notice(`warning: ${m}`) });
      printLine(
        `Served index: ${outcome.modules} modules, ${outcome.versions} versions at ${outcome.commit.slice(0, 12)}` +
          `${outcome.changed ? ` (new commit: +${outcome.added} ~${outcome.updated} -${outcome.removed})` : ' (unchanged)'}`,
      );
      if (outcome.needDownload > 0) {
        notice(
          `${outcome.needDownload} versions need an archive from another source: run \`moonbit-registry mirror\``,
        );
      }
    });
}
