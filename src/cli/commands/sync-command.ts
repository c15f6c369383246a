import type { Command } from 'commander';
import { type PullOutcome, type PushOutcome, pullIndex, pushIndex } from '../../registry/index-remote.js';
import { notice, printLine } from '../output.js';
import { openCommandRegistry } from './registry-dir.js';

interface SyncFlags {
  pull?: boolean;
  push?: boolean;
  json: boolean;
}

export function registerSyncCommand(program: Command): void {
  program
    .command('sync')
    .description(
      'take the new commits of [git] remote_url into the served index (the default, as in moonbit-registry-tools), or push the served index there',
    )
    .option(
      '--pull',
      "take the remote branch's new commits, fast-forward only (what sync does without flags)",
    )
    .option('--push', 'push the served index to the remote branch (never forced)')
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      '\nWith both, --pull runs first. The remote is [git] remote_url and branch in registry.toml;\ncredentials for an http(s) remote go in [git.auth]. [git] auto_push = true pushes after every change.',
    )
    .action(async (flags: SyncFlags, command: Command) => {
      const registry = await openCommandRegistry(command);
      const result: { pull?: PullOutcome; push?: PushOutcome } = {};
      if (flags.pull || !flags.push) {
        result.pull = await pullIndex(registry);
        if (!flags.json) printLine(describePull(result.pull));
        const shadowed = result.pull.served?.unpublishedExclusive ?? [];
        if (shadowed.length > 0) {
          notice(
            `warning: the pulled index lists ${shadowed.length} module(s) under [hosted] exclusive that were never published here (${shadowed.slice(0, 10).join(', ')}${shadowed.length > 10 ? ', ...' : ''}); no upstream may provide them, so the next mirror or sync drops them`,
          );
        }
      }
      if (flags.push) {
        result.push = await pushIndex(registry);
        if (!flags.json) printLine(describePush(result.push));
      }
      if (flags.json) printLine(JSON.stringify(syncJson(result), null, 2));
    });
}

const short = (commit: string | undefined) => (commit ? commit.slice(0, 12) : '(none)');

function describePull(pull: PullOutcome): string {
  const where = `${pull.remote} (branch ${pull.branch})`;
  if (pull.status === 'up-to-date') return `already up to date with ${where}: main ${short(pull.to)}`;
  const served = pull.served;
  const counts = served
    ? ` (${served.modules} modules, ${served.versions} versions` +
      (served.withoutArchives > 0
        ? `; ${served.withoutArchives} without archives here: \`moonbit-registry mirror\` with the same patterns, or \`serve --proxy\`, fetches them)`
        : ')')
    : '';
  const fresh = pull.status === 'fresh' ? ', replacing the empty first index' : '';
  return `pulled ${pull.commits} commit${pull.commits === 1 ? '' : 's'} from ${where}: main ${short(pull.from)} -> ${short(pull.to)}${fresh}${counts}`;
}

function describePush(push: PushOutcome): string {
  const where = `${push.remote} (branch ${push.branch})`;
  if (push.status === 'up-to-date') return `already up to date: ${where} is at main ${short(push.to)}`;
  const range = push.from ? `${short(push.from)}..${short(push.to)}` : `${short(push.to)} (new branch)`;
  return `pushed main ${range} to ${where}`;
}

/** `--json`: one object, snake_case like the other commands' JSON. */
function syncJson(result: { pull?: PullOutcome; push?: PushOutcome }): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  if (result.pull) {
    const { status, remote, branch, from, to, commits, served } = result.pull;
    json.pull = {
      status,
      remote,
      branch,
      from: from ?? null,
      to,
      commits,
      ...(served
        ? {
            modules: served.modules,
            versions: served.versions,
            without_archives: served.withoutArchives,
            unpublished_exclusive: served.unpublishedExclusive,
          }
        : {}),
    };
  }
  if (result.push) {
    const { status, remote, branch, from, to } = result.push;
    json.push = { status, remote, branch, from: from ?? null, to };
  }
  return json;
}
