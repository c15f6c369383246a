import type { Command } from 'commander';
import { formatDuration, parseDuration } from '../../core/duration.js';
import { describeError, RegistryError } from '../../core/errors.js';
import { formatBytes } from '../../core/format-bytes.js';
import { moduleKey } from '../../core/module-name.js';
import { collectGarbage, type GcReport, type RemovedEntry } from '../../gc/collect-garbage.js';
import { notice, printLine } from '../output.js';
import { openCommandRegistry } from './registry-dir.js';

interface GcFlags {
  dryRun: boolean;
  json: boolean;
  olderThan?: string;
}

export function registerGcCommand(program: Command): void {
  program
    .command('gc')
    .description('remove archives, prebuilt wasm and temp files nothing references any more')
    .option('--dry-run', 'list what would be removed; remove nothing', false)
    .option('--json', 'print a machine-readable summary on stdout', false)
    .option(
      '--older-than <duration>',
      'remove only files not downloaded (never downloaded: not written) within this long, e.g. 30d',
    )
    .addHelpText(
      'after',
      '\nReferenced, and kept: every line of the served index (data/index), the lines of the\n' +
        'pull-through index (data/proxy-index) an enabled source still offers, and every published\n' +
        'version. An archive is referenced by module, version and checksum: other bytes of the\n' +
        'same version (a replaced stand-in) are not. Prebuilt wasm goes with its version.\n' +
        "\nA removed or disabled source's versions stay in the served index until the next\n" +
        '`mirror` or `index rebuild`, and their archives stay until then. `[gc] keep` in\n' +
        'registry.toml pins modules. Temp files go when their process is gone (this machine) or\n' +
        'nothing in them changed for an hour (at least twice [mirror] archive_timeout).\n' +
        '\nHolds the registry lock. A running serve may keep streaming a file gc removes.',
    )
    .action(async (flags: GcFlags, command: Command) => {
      let report: GcReport;
      try {
        const olderThanMs = flags.olderThan === undefined ? undefined : olderThan(flags.olderThan);
        const registry = await openCommandRegistry(command);
        report = await collectGarbage(registry, {
          dryRun: flags.dryRun,
          ...(olderThanMs === undefined ? {} : { olderThanMs }),
          log: { info: notice, warn: (m) => notice(`warning: ${m}`) },
        });
      } catch (error) {
        // A script reading --json gets an answer on stdout even when gc never ran.
        if (flags.json) printLine(JSON.stringify({ error: describeError(error) }));
        throw error;
      }
      if (flags.json) printLine(JSON.stringify(report, null, 2));
      else printReport(report, flags.olderThan);
      if (report.failed.length > 0) {
        throw new RegistryError(
          'IO',
          `${plural(report.failed.length, 'entry', 'entries')} could not be removed (listed above)`,
        );
      }
    });
}

function olderThan(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    throw new RegistryError('USAGE', `--older-than ${JSON.stringify(text)} is not a duration`, {
      hint: 'use a number with a unit: "12h", "7d", "1d12h"',
    });
  }
  return ms;
}

function printReport(report: GcReport, olderThanText: string | undefined): void {
  const verb = report.dryRun ? 'would remove' : 'removed';
  for (const entry of report.removed) printLine(`${verb} ${describeEntry(entry)}`);
  for (const failure of report.failed) printLine(`failed  ${failure.path}: ${failure.error}`);
  const { archives, assets, temp } = report.counts;
  const what = [
    plural(archives, 'archive'),
    plural(assets, 'asset folder'),
    plural(temp, 'temp entry', 'temp entries'),
  ].join(', ');
  printLine(
    report.dryRun
      ? `Would remove ${what}: ${formatBytes(report.freed)} to free (dry run, nothing removed).`
      : `Removed ${what}: ${formatBytes(report.freed)} freed.`,
  );
  const kept = [
    ...(report.kept.pinned > 0 ? [`${report.kept.pinned} pinned by [gc] keep`] : []),
    ...(report.kept.recent > 0
      ? [`${report.kept.recent} downloaded or written within ${olderThanDisplay(olderThanText)}`]
      : []),
    ...(report.kept.live > 0
      ? [`${plural(report.kept.live, 'temp entry', 'temp entries')} of running processes`]
      : []),
  ];
  if (kept.length > 0) printLine(`Kept, though not referenced: ${kept.join('; ')}.`);
  if (report.staleServed > 0) {
    notice(
      `note: ${plural(report.staleServed, 'served version')} no enabled source offers any more stay, with their archives, ` +
        'until the next `mirror` or `moonbit-registry index rebuild` takes them out of the served index; gc removes them after that',
    );
  }
}

function describeEntry(entry: RemovedEntry): string {
  const size = formatBytes(entry.bytes);
  if (entry.kind === 'archive') {
    return `archive ${moduleKey(entry.module ?? '', entry.version ?? '')} ${entry.checksum?.slice(0, 12)}… (${size})`;
  }
  if (entry.kind === 'assets') {
    return `assets  ${moduleKey(entry.module ?? '', entry.version ?? '')} (${plural(entry.files, 'file')}, ${size})`;
  }
  return `temp    ${entry.path} (${plural(entry.files, 'file')}, ${size})`;
}

function olderThanDisplay(text: string | undefined): string {
  const ms = text === undefined ? undefined : parseDuration(text);
  return ms === undefined ? '--older-than' : formatDuration(ms);
}

function plural(count: number, noun: string, nouns = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : nouns}`;
}
