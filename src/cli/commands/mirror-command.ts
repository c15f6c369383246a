import type { Command } from 'commander';
import { describeError, RegistryError } from '../../core/errors.js';
import { type MirrorSummary, mirror } from '../../registry/mirror.js';
import { openRegistry } from '../../registry/registry.js';
import { formatBytes, printLine } from '../output.js';
import { createReporter, progressMode } from '../progress.js';
import { registryDir } from './registry-dir.js';

interface MirrorFlags {
  full: boolean;
  strict: boolean;
  source?: string;
  quiet: boolean;
  json: boolean;
}

export function registerMirrorCommand(program: Command): void {
  program
    .command('mirror')
    .description('mirror modules (and, by default, their dependencies) from a source into this registry')
    .argument('[patterns...]', 'globs over full module names: owner/name, "owner/*", "owner/**" (nested)')
    .option('--full', 'mirror every module (of -s SOURCE, or of all enabled sources)', false)
    .option('--strict', 'mirror only what the patterns match, without dependencies', false)
    .option('-s, --source <name>', 'source whose index the patterns match (default: default_source)')
    .option('-q, --quiet', 'print only warnings, errors and the summary', false)
    .option('--json', 'print a machine-readable summary on stdout', false)
    .addHelpText(
      'after',
      '\nDependencies: for each dependency "x.y.z" the version `moon` would pick is mirrored (the smallest\n' +
        'version >= x.y.z in its compatibility set), resolved across all enabled sources by priority.',
    )
    .action(async (patterns: string[], flags: MirrorFlags, command: Command) => {
      if (!flags.full && patterns.length === 0) {
        throw new RegistryError('USAGE', 'mirror needs at least one PATTERN, or --full', {
          hint: 'for example: moonbit-registry mirror "moonbitlang/*"',
        });
      }
      if (flags.full && patterns.length > 0) {
        throw new RegistryError('USAGE', '--full mirrors everything: drop the patterns or drop --full');
      }
      let summary: MirrorSummary;
      try {
        const registry = await openRegistry(registryDir(command));
        summary = await mirror(registry, {
          patterns,
          full: flags.full,
          strict: flags.strict,
          source: flags.source,
          reporter: createReporter(progressMode(flags)),
        });
      } catch (error) {
        // A script reading --json gets an answer on stdout even when the run never started.
        if (flags.json) printLine(JSON.stringify({ error: describeError(error) }));
        throw error;
      }
      if (flags.json) printLine(JSON.stringify(jsonSummary(summary), null, 2));
      else printSummary(summary);
      if (summary.failed > 0) {
        throw new RegistryError(
          'UPSTREAM',
          `${summary.failed} of ${summary.versions} archives could not be mirrored (listed above); the rest were kept`,
        );
      }
    });
}

function jsonSummary(summary: MirrorSummary) {
  const { seconds, ...rest } = summary;
  return { ...rest, seconds: Math.round(seconds * 1000) / 1000 };
}

function printSummary(summary: MirrorSummary): void {
  printLine(
    `Mirrored ${summary.modules} modules, ${summary.versions} versions: ${summary.downloaded} downloaded (${formatBytes(summary.bytes)}), ${summary.skipped} already present, ${summary.failed} failed, in ${summary.seconds.toFixed(1)}s`,
  );
  const perSource = Object.entries(summary.sources)
    .map(([name, s]) => `${name}: ${s.served} served, ${s.downloaded} downloaded`)
    .join('; ');
  printLine(
    `Served index: ${summary.served.modules} modules, ${summary.served.versions} versions at ${summary.served.commit.slice(0, 12)}${summary.served.changed ? ' (new commit)' : ' (unchanged)'}`,
  );
  if (perSource) printLine(`By source: ${perSource}`);
  for (const failure of summary.failures)
    printLine(`  failed ${failure.module}@${failure.version}: ${failure.error}`);
}
