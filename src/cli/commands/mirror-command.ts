import type { Command } from 'commander';
import { describeError, RegistryError } from '../../core/errors.js';
import { formatBytes } from '../../core/format-bytes.js';
import { type MirrorSummary, mirror } from '../../registry/mirror.js';
import type { Registry } from '../../registry/registry.js';
import { recordMirrorRun } from '../../status/mirror-runs.js';
import type { MirrorRunRecord } from '../../status/status-report.js';
import { notice, printLine } from '../output.js';
import { type CliReporter, createReporter, progressMode } from '../progress.js';
import { openCommandRegistry } from './registry-dir.js';

interface MirrorFlags {
  full: boolean;
  strict: boolean;
  source?: string;
  quiet: boolean;
  json: boolean;
  /** Commander's negation of --no-assets. */
  assets: boolean;
}

export function registerMirrorCommand(program: Command): void {
  program
    .command('mirror')
    .description('mirror modules (and, by default, their dependencies) from a source into this registry')
    .argument(
      '[patterns...]',
      'globs over full module names: owner/name, "owner/*", "owner/**" (nested) (default: [mirror] packages)',
    )
    .option('--full', 'mirror every module (of -s SOURCE, or of all enabled sources)', false)
    .option('--strict', 'mirror only what the patterns match, without dependencies', false)
    .option('-s, --source <name>', 'source whose index the patterns match (default: default_source)')
    .option('-q, --quiet', 'print only warnings, errors and the summary', false)
    .option('--json', 'print a machine-readable summary on stdout', false)
    .option('--no-assets', 'skip the prebuilt wasm of executable packages (fetched by default)')
    .addHelpText(
      'after',
      '\nDependencies: for each dependency "x.y.z" the version `moon` would pick is mirrored (the smallest\n' +
        'version >= x.y.z in its compatibility set), resolved across all enabled sources by priority.',
    )
    .action(async (given: string[], flags: MirrorFlags, command: Command) => {
      if (flags.full && given.length > 0) {
        throw new RegistryError('USAGE', '--full mirrors everything: drop the patterns or drop --full');
      }
      let patterns = given;
      let summary: MirrorSummary;
      const reporter = createReporter(progressMode(flags));
      const stop = stopOnSignals(reporter, flags.json);
      const started = new Date();
      let registry: Registry | undefined;
      const record = (outcome: Omit<MirrorRunRecord, 'started_at' | 'finished_at' | 'request'>) =>
        registry ? recordRun(registry, started, patterns, flags, outcome) : Promise.resolve();
      try {
        const opened = await openCommandRegistry(command);
        patterns = chosenPatterns(given, flags, opened.config.mirror.packages);
        registry = opened; // a usage error is no mirror run: it is not recorded
        summary = await mirror(registry, {
          patterns,
          full: flags.full,
          strict: flags.strict,
          source: flags.source,
          reporter,
          signal: stop.signal,
          assets: flags.assets,
        });
      } catch (error) {
        await record({
          outcome: stop.received ? 'interrupted' : 'error',
          downloaded: 0,
          already_stored: 0,
          failed: 0,
          bytes: 0,
          error: describeError(error),
        });
        // A script reading --json gets an answer on stdout even when the run never started.
        if (flags.json) printLine(JSON.stringify({ error: describeError(error) }));
        if (!stop.received) throw error;
        // Ctrl-C also reaches git children of this terminal: say why they failed.
        notice(`error: ${describeError(error)} (interrupted by ${stop.received})`);
        process.exitCode = exitCodeFor(stop.received);
        return;
      } finally {
        stop.dispose();
      }
      await record({
        outcome: stop.received ? 'interrupted' : summary.failed > 0 ? 'failed' : 'ok',
        downloaded: summary.downloaded,
        already_stored: summary.skipped,
        failed: summary.failed,
        bytes: summary.bytes,
        error: summary.failures[0] ? describeFailure(summary) : null,
      });
      if (flags.json) printLine(JSON.stringify(jsonSummary(summary), null, 2));
      else printSummary(summary, stop.received);
      if (stop.received) {
        // Not thrown: the exit status tells which signal stopped the run (128 + its number).
        notice(
          `error: interrupted by ${stop.received}: ${summary.remaining} of ${summary.versions} selected versions not mirrored` +
            `${summary.failed > 0 ? `, ${summary.failed} failed` : ''}; what completed is kept and served`,
        );
        notice('hint: run the same mirror again to fetch the rest');
        process.exitCode = exitCodeFor(stop.received);
        return;
      }
      if (summary.failed > 0) {
        throw new RegistryError(
          'UPSTREAM',
          `${summary.failed} of ${summary.versions} archives could not be mirrored (listed above); the rest were kept`,
        );
      }
    });
}

/** The run, for `status` and the status page; never allowed to fail the mirror itself. */
async function recordRun(
  registry: Registry,
  started: Date,
  patterns: string[],
  flags: MirrorFlags,
  outcome: Omit<MirrorRunRecord, 'started_at' | 'finished_at' | 'request'>,
): Promise<void> {
  try {
    await recordMirrorRun(registry.layout, {
      started_at: started.toISOString(),
      finished_at: new Date().toISOString(),
      request: { patterns, full: flags.full, strict: flags.strict, source: flags.source ?? null },
      ...outcome,
    });
  } catch (error) {
    notice(`warning: could not record this run for \`status\`: ${describeError(error)}`);
  }
}

function describeFailure(summary: MirrorSummary): string {
  const first = summary.failures[0];
  const more = summary.failures.length > 1 ? ` (and ${summary.failures.length - 1} more)` : '';
  return first ? `${first.module}@${first.version}: ${first.error}${more}` : '';
}

type StopSignal = 'SIGINT' | 'SIGTERM';

const SIGNAL_NUMBERS: Record<StopSignal, number> = { SIGINT: 2, SIGTERM: 15 };

/** The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM). */
function exitCodeFor(signal: StopSignal): number {
  return 128 + SIGNAL_NUMBERS[signal];
}

interface SignalStop {
  signal: AbortSignal;
  /** The first signal received, if any. */
  readonly received: StopSignal | undefined;
  dispose(): void;
}

/**
 * SIGINT/SIGTERM while a mirror runs: the first stops new downloads (those in flight finish and
 * everything completed is published, then the summary), a second exits at once. Either way the
 * store stays consistent: a killed run leaves at most temp files, cleared by the next one.
 */
function stopOnSignals(reporter: CliReporter, json: boolean): SignalStop {
  const controller = new AbortController();
  let received: StopSignal | undefined;
  const onSignal = (signal: StopSignal) => {
    if (received) {
      notice(`${signal} again: exiting now; downloads in flight are dropped (the next mirror clears them)`);
      if (json) printLine(JSON.stringify({ error: `interrupted by ${signal}`, interrupted: true }));
      process.exit(exitCodeFor(signal));
    }
    received = signal;
    reporter.notice(
      `stopping (${signal}): no new downloads; ${reporter.inFlight()} in flight (${signal === 'SIGINT' ? 'Ctrl-C' : signal} again to exit at once)`,
    );
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((signal) => {
    const handler = () => onSignal(signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    dispose: () => {
      for (const [signal, handler] of handlers) process.off(signal, handler);
    },
  };
}

function jsonSummary(summary: MirrorSummary) {
  const { seconds, ...rest } = summary;
  return { ...rest, seconds: Math.round(seconds * 1000) / 1000 };
}

function printSummary(summary: MirrorSummary, interruptedBy: StopSignal | undefined): void {
  if (interruptedBy) {
    printLine(
      `Interrupted by ${interruptedBy}: ${summary.remaining} versions not mirrored (not started, or stopped instead of retried); what completed is kept`,
    );
  }
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
  const { assets } = summary;
  if (assets && assets.packages > 0) {
    printLine(
      `Prebuilt wasm: ${assets.packages} executable packages: ${assets.stored} fetched (${formatBytes(assets.bytes)}), ${assets.absent} without one at the source, ${assets.failed} failed`,
    );
  }
  for (const failure of summary.failures)
    printLine(`  failed ${failure.module}@${failure.version}: ${failure.error}`);
}

/** The patterns given, else `[mirror] packages` (moonbit-registry-tools' list), else none with --full. */
function chosenPatterns(given: string[], flags: MirrorFlags, packages: string[]): string[] {
  if (given.length > 0 || flags.full) return given;
  if (packages.length > 0) return packages;
  throw new RegistryError('USAGE', 'mirror needs at least one PATTERN, or --full', {
    hint: 'for example: moonbit-registry mirror "moonbitlang/*" (or list patterns in [mirror] packages)',
  });
}
