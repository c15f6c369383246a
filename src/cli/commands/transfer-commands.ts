import { resolve } from 'node:path';
import type { Command } from 'commander';
import { describeError } from '../../core/errors.js';
import { formatBytes } from '../../core/format-bytes.js';
import { exportBundle } from '../../transfer/export-bundle.js';
import { importBundle } from '../../transfer/import-bundle.js';
import { notice, printLine } from '../output.js';
import { createTransferProgress, progressMode } from '../progress.js';
import { openCommandRegistry } from './registry-dir.js';

interface ExportFlags {
  since?: string;
  json: boolean;
  quiet?: boolean;
}

interface ImportFlags {
  force: boolean;
  json: boolean;
  quiet?: boolean;
}

/** `export` and `import`: moving a registry's served modules into an air-gapped one, by file. */
export function registerTransferCommands(program: Command): void {
  program
    .command('export')
    .description('write the served index and everything it needs into one file, for `import` elsewhere')
    .argument('<file>', 'the bundle to write (replaced if it exists)')
    .option(
      '--since <bundle-or-commit>',
      'carry only what is new since this earlier bundle file or index commit',
    )
    .option('--json', 'print a machine-readable summary on stdout', false)
    .option('-q, --quiet', 'no progress output')
    .addHelpText(
      'after',
      '\nThe file is a zip: a git bundle of the served index (branch main), the archives its lines\n' +
        'name, their prebuilt wasm (data/assets), the symbols (data/symbols) and a manifest with\n' +
        "every file's sha256 and size, and this registry's name and id. With --since, the index\n" +
        'bundle needs that commit, and only archives and assets of lines added or changed after it\n' +
        "are carried (symbols when they differ from the earlier bundle's). Holds the registry lock.",
    )
    .action(async (file: string, flags: ExportFlags, command: Command) => {
      try {
        const registry = await openCommandRegistry(command);
        const summary = await exportBundle(registry, resolve(file), {
          ...(flags.since === undefined ? {} : { since: flags.since }),
          progress: createTransferProgress(progressMode(flags), 'export'),
        });
        if (flags.json) printLine(JSON.stringify(summary, null, 2));
        else {
          const f = summary.files;
          printLine(
            `exported ${summary.commit.slice(0, 12)}${summary.prerequisite ? ` (since ${summary.prerequisite.slice(0, 12)})` : ''} to ${summary.file}: ` +
              `${f.archives} archives, ${f.assets} assets, ${f.symbols} symbols files, ${formatBytes(summary.bytes)} in ${summary.seconds.toFixed(1)} s`,
          );
        }
      } catch (error) {
        if (flags.json) printLine(JSON.stringify({ error: describeError(error) }));
        throw error;
      }
    });

  program
    .command('import')
    .description(
      'apply a bundle written by `export`: verified whole before anything changes, applied in one step',
    )
    .argument('<file>', 'the bundle to import')
    .option('--force', 'accept a bundle from another registry than the one this registry imports from', false)
    .option('--json', 'print a machine-readable summary on stdout', false)
    .option('-q, --quiet', 'no progress output')
    .addHelpText(
      'after',
      '\nNo network. The exporting registry becomes a source of this one, of type "bundle" (named\n' +
        'after it, priority 1), whose index moves only by import: serve, sync and mirror serve its\n' +
        "versions like any source's. Every file is checked against the manifest in data/tmp\n" +
        'first; archives then move into data/packages, and the source and the served index move\n' +
        'last, so a killed import leaves the registry serving what it served before.\n' +
        '\nRefused: a truncated or altered file; a bundle made --since a commit this registry never\n' +
        'imported; a bundle from another registry than the first one imported from, or into a\n' +
        'registry that already serves modules of its own (unless --force). Holds the registry lock.',
    )
    .action(async (file: string, flags: ImportFlags, command: Command) => {
      try {
        const registry = await openCommandRegistry(command);
        const summary = await importBundle(registry, resolve(file), {
          force: flags.force,
          progress: createTransferProgress(progressMode(flags), 'import'),
          log: { info: () => undefined, warn: (m) => notice(`warning: ${m}`) },
        });
        if (flags.json) printLine(JSON.stringify(summary, null, 2));
        else {
          printLine(
            `imported ${summary.registry.name} at ${summary.commit.slice(0, 12)} as source "${summary.source}": ` +
              `${summary.newArchives} new archives, ${summary.files.assets} assets, ${summary.files.symbols} symbols files; ` +
              `served index ${summary.index.changed ? `now at ${summary.index.commit.slice(0, 12)}` : 'unchanged'} ` +
              `(${summary.index.versions} versions, ${summary.index.added} added) in ${summary.seconds.toFixed(1)} s`,
          );
        }
      } catch (error) {
        if (flags.json) printLine(JSON.stringify({ error: describeError(error) }));
        throw error;
      }
    });
}
