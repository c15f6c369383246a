import type { Command } from 'commander';
import { describeError, RegistryError } from '../../core/errors.js';
import { formatBytes } from '../../core/format-bytes.js';
import { moduleKey } from '../../core/module-name.js';
import {
  type Problem,
  type RepairOutcome,
  type VerifyReport,
  verifyRegistry,
} from '../../registry/verify.js';
import { notice, printLine } from '../output.js';
import { openCommandRegistry } from './registry-dir.js';

interface VerifyFlags {
  repair: boolean;
  json: boolean;
}

export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description('check every stored archive and served index line; --repair fixes what it can')
    .option(
      '--repair',
      'delete what is broken, download it again or drop it, and publish a fixed index',
      false,
    )
    .option('--json', 'print a machine-readable report on stdout', false)
    .addHelpText(
      'after',
      '\nChecks, without network, against the served index (data/index; the pull-through index\n' +
        'data/proxy-index is not checked) and the last fetched source indexes:\n' +
        '  unparsable-line  an index line `moon` would skip\n' +
        '  missing-archive  a served version whose archive is not in data/packages\n' +
        '  corrupt-archive  a stored archive whose sha256 is not its checksum (served or not)\n' +
        '  no-source        a served version no enabled source lists with that checksum\n' +
        '  corrupt-asset    a stored prebuilt wasm of a served version that does not hash to its\n' +
        '                   .sha256, or one of the two files without the other\n' +
        '  stray-file       anything in data/packages that is not <module>/<version>/<sha256>.zip\n' +
        '  corrupt-symbols  a stored symbols.zip (data/symbols) that is not a readable zip\n' +
        '\n--repair deletes stray files, corrupt archives, corrupt assets and corrupt symbols, downloads\n' +
        'corrupt and missing archives again from the sources that list the same checksum (assets from\n' +
        'the source of the served line), drops from the served index the\n' +
        'versions it cannot repair (no source, download failed), and publishes the index in one\n' +
        'commit. It never fetches source indexes: run `mirror` for that.\n' +
        '\nExit status: 0 when nothing is wrong (with --repair: when everything was repaired; a\n' +
        'dropped version counts as not repaired), 1 otherwise.',
    )
    .action(async (flags: VerifyFlags, command: Command) => {
      let report: VerifyReport;
      try {
        const registry = await openCommandRegistry(command);
        report = await verifyRegistry(registry, {
          repair: flags.repair,
          log: { info: notice, warn: (m) => notice(`warning: ${m}`) },
        });
      } catch (error) {
        // A script reading --json gets an answer on stdout even when the check never ran.
        if (flags.json) printLine(JSON.stringify({ error: describeError(error) }));
        throw error;
      }
      if (flags.json) printLine(JSON.stringify(report, null, 2));
      else printReport(report);
      if (!report.ok) throw verdict(report);
    });
}

function subject(problem: Problem): string {
  // A version may have several tools: the file says which.
  if (problem.kind === 'corrupt-asset' && problem.path) return problem.path;
  if (problem.version) return moduleKey(problem.module ?? '', problem.version);
  return problem.path ?? problem.module ?? '';
}

function printReport(report: VerifyReport): void {
  for (const p of report.problems) printLine(`${p.kind.padEnd(16)} ${subject(p)}: ${p.detail}`);
  const { versions, archives, bytes, assets } = report.checked;
  const found = report.problems.length;
  printLine(
    `Checked ${versions} served versions and ${archives} stored archives (${formatBytes(bytes)}; ` +
      `${report.unlisted} not in the served index), ${assets} prebuilt wasm at ${report.commit.slice(0, 12)}: ` +
      `${found === 0 ? 'no problems' : plural(found, 'problem')}`,
  );
  if (!report.repaired || !report.unrepaired) return;
  for (const o of report.repaired) printLine(`repaired ${o.kind} ${subject(o)}: ${o.detail}`);
  for (const o of report.unrepaired) printLine(`${o.action.padEnd(8)} ${o.kind} ${subject(o)}: ${o.detail}`);
  if (report.index) {
    const dropped = droppedVersions(report.unrepaired);
    const lines = report.repaired.filter((o) => o.kind === 'unparsable-line').length;
    printLine(
      report.index.changed
        ? `Served index: new commit ${report.index.commit.slice(0, 12)} (${plural(dropped, 'version')} dropped, ${plural(lines, 'line')} removed)`
        : 'Served index: unchanged',
    );
  }
}

/** How many versions --repair took out of the served index (one may have several problems). */
function droppedVersions(unrepaired: RepairOutcome[]): number {
  return new Set(
    unrepaired.filter((o) => o.action === 'dropped').map((o) => moduleKey(o.module ?? '', o.version ?? '')),
  ).size;
}

function verdict(report: VerifyReport): RegistryError {
  const found = report.problems.length;
  if (!report.unrepaired) {
    return new RegistryError('CHECKSUM', `${plural(found, 'problem')} found (listed above)`, {
      hint: 'run `moonbit-registry verify --repair` to delete, download again or drop what is broken',
    });
  }
  const dropped = droppedVersions(report.unrepaired);
  const left = report.unrepaired.filter((o) => o.action === 'left').length;
  const parts = [
    ...(dropped > 0 ? [`${plural(dropped, 'version')} dropped from the served index`] : []),
    ...(left > 0 ? [`${plural(left, 'problem')} left as they were`] : []),
  ];
  return new RegistryError(
    'CHECKSUM',
    `${found - report.unrepaired.length} of ${found} problems repaired; ${parts.join(', ')} (listed above)`,
  );
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
