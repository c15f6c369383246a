import type { Command } from 'commander';
import { RegistryError } from '../../core/errors.js';
import { markVersions, type VersionMark } from '../../hosted/version-marks.js';
import { notice } from '../output.js';
import { openCommandRegistry } from './registry-dir.js';

/** `yank`, `unyank` and `deprecate`: marks on served versions' lines, kept in the hosted index. */
export function registerYankCommands(program: Command): void {
  program
    .command('yank')
    .description('mark a version yanked: its line gains "yanked": true (the archive stays downloadable)')
    .argument('<module@version>', 'for example company/app@1.2.0')
    .option('--reason <text>', 'why (kept as "yanked_reason" on the line)')
    .action(async (target: string, options: { reason?: string }, command: Command) => {
      const { module, version } = splitTarget(target, true);
      await mark(command, module, version, {
        kind: 'yank',
        ...(options.reason ? { reason: options.reason } : {}),
      });
    });

  program
    .command('unyank')
    .description('take a yank back')
    .argument('<module@version>', 'for example company/app@1.2.0')
    .action(async (target: string, _options: unknown, command: Command) => {
      const { module, version } = splitTarget(target, true);
      await mark(command, module, version, { kind: 'unyank' });
    });

  program
    .command('deprecate')
    .description('mark a module (every version) or one version deprecated with a message ("" takes it back)')
    .argument('<module[@version]>', 'company/app, or company/app@1.2.0')
    .argument('<message>', 'what users should do instead')
    .action(async (target: string, message: string, _options: unknown, command: Command) => {
      const { module, version } = splitTarget(target, false);
      await mark(command, module, version, { kind: 'deprecate', message });
    });
}

async function mark(command: Command, module: string, version: string | undefined, what: VersionMark) {
  const registry = await openCommandRegistry(command);
  const outcome = await markVersions(
    registry,
    { module, ...(version ? { version } : {}), mark: what, by: 'local' },
    { info: () => undefined, warn: (message) => notice(`warning: ${message}`) },
  );
  if (outcome.versions.length === 0) notice(`${module}: nothing to change`);
  else
    notice(
      `${what.kind}: ${module}@${outcome.versions.join(', ')} (served index at ${outcome.commit?.slice(0, 12)})`,
    );
}

/** `module@version`, or `module` where the version may be left out. */
export function splitTarget(target: string, needsVersion: boolean): { module: string; version?: string } {
  const at = target.indexOf('@');
  if (at < 0) {
    if (needsVersion) throw new RegistryError('USAGE', `"${target}" names no version: write MODULE@VERSION`);
    return { module: target };
  }
  return { module: target.slice(0, at), version: target.slice(at + 1) };
}
