import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import type { RegistryConfig } from '../config/schema.js';
import { describeError, isRegistryError, RegistryError } from '../core/errors.js';
import { moduleMatcher } from '../core/module-glob.js';
import { resolveCommit } from '../git/objects.js';
import { type GitResult, gitAuthRefused, gitConfigEnv, lastMeaningfulLine, runGit } from '../git/run-git.js';
import { SERVED_BRANCH } from '../index/served-index.js';
import { authorizationHeader, headerSecrets, redact } from '../upstream/credentials.js';
import type { RegistryLayout } from './layout.js';
import { withRegistryLock } from './lock.js';
import type { Registry } from './registry.js';

/**
 * `[git]` remote of the served index: `sync --push`, `sync --pull` and auto_push. The served
 * `main` only moves forward (clients `git pull` it), so a push is never forced and a pull only
 * fast-forwards, except over a fresh index that nobody can have built on.
 */

const MAIN = `refs/heads/${SERVED_BRANCH}`;
const GIT_AUTH = { owner: '[git.auth]', key: '[git.auth]' };

/** The remote as git reaches it; `shown` and `redact` keep secrets out of every message. */
interface IndexRemote {
  url: string;
  branch: string;
  shown: string;
  /** The registry folder: a relative path in remote_url is relative to it. */
  cwd: string;
  env: Record<string, string>;
  idleTimeoutMs: number;
  redact(text: string): string;
}

export interface PushOutcome {
  status: 'pushed' | 'up-to-date';
  remote: string;
  branch: string;
  /** The remote branch before the push; undefined when the push created it. */
  from: string | undefined;
  to: string;
}

export interface ServedCounts {
  modules: number;
  versions: number;
  /** Versions the index lists whose archive is not in this registry's store. */
  withoutArchives: number;
  /**
   * Modules the index lists under `[hosted] exclusive` that were never published here: no
   * upstream may provide them (dependency confusion), so the next mirror or sync drops them.
   */
  unpublishedExclusive: string[];
}

export interface PullOutcome {
  /** fresh: this registry's index was the empty first commit, and is now the remote's. */
  status: 'fast-forward' | 'fresh' | 'up-to-date';
  remote: string;
  branch: string;
  /** Local main before and after (undefined before: there was none). */
  from: string | undefined;
  to: string;
  commits: number;
  /** The served index after the commits were taken (not counted when nothing was). */
  served?: ServedCounts;
}

/** Pushes the served main to the remote branch, fast-forward only. */
export async function pushIndex(registry: Registry): Promise<PushOutcome> {
  const remote = indexRemote(registry.config, registry.layout);
  try {
    return await pushTo(remote, registry.layout.indexDir);
  } catch (error) {
    throw inContext(error, `cannot push the index to ${remote.shown} (branch ${remote.branch})`);
  }
}

/** Takes the remote branch's new commits into the served main (see the file comment). */
export async function pullIndex(registry: Registry): Promise<PullOutcome> {
  const remote = indexRemote(registry.config, registry.layout);
  const gitDir = registry.layout.indexDir;
  // One ref per run: two pulls at once must not read each other's fetch.
  const ref = `refs/remote-sync/incoming-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const incoming = await fetchBranch(remote, gitDir, ref);
    return await withRegistryLock(
      registry.layout.lockTarget,
      'sync --pull',
      { waitForBriefMs: 60_000 },
      async () => takeCommits(registry, remote, incoming),
    );
  } catch (error) {
    throw inContext(error, `cannot pull the index from ${remote.shown} (branch ${remote.branch})`);
  } finally {
    await runGit(['--git-dir', gitDir, 'update-ref', '-d', ref]).catch(() => undefined);
  }
}

/**
 * ServedIndex's afterCommit when `[git] auto_push` is on: pushes one at a time, in commit
 * order, and never throws (the commit is made either way; the warning says how to catch up).
 * The change does not wait for its push: a slow or hanging remote must not hold the registry
 * lock (a publish would wait for it). A CLI command still ends only once git has exited.
 */
export function autoPushHook(
  config: RegistryConfig,
  layout: RegistryLayout,
  warn: (message: string) => void,
): ((commit: string) => Promise<void>) | undefined {
  if (!config.git.auto_push || config.git.remote_url === '') return undefined;
  // One push at a time and at most one waiting: each push sends the whole of main, so the
  // waiting one covers every commit made meanwhile (a dead remote builds no backlog).
  let running: Promise<void> | undefined;
  let again = false;
  const run = (): Promise<void> =>
    autoPush(config, layout, warn).then(() => {
      if (!again) {
        running = undefined;
        return;
      }
      again = false;
      running = run();
      return running;
    });
  return () => {
    if (running) again = true;
    else running = run();
    return Promise.resolve();
  };
}

async function autoPush(
  config: RegistryConfig,
  layout: RegistryLayout,
  warn: (message: string) => void,
): Promise<void> {
  let shown = redact(config.git.remote_url, []);
  try {
    const remote = indexRemote(config, layout);
    shown = remote.shown;
    await pushTo(remote, layout.indexDir);
  } catch (error) {
    warn(
      `auto_push to ${shown} failed: ${describeError(error)}; the index is committed here: run \`moonbit-registry sync --push\``,
    );
  }
}

function indexRemote(config: RegistryConfig, layout: RegistryLayout): IndexRemote {
  const { remote_url: url, branch, auth } = config.git;
  if (url === '') {
    throw new RegistryError('CONFIG', 'no [git] remote_url in registry.toml', {
      hint: 'moonbit-registry config git.remote_url URL',
    });
  }
  // Credentials go only where [git.auth] can mean something: ssh and local remotes ignore it.
  const header = /^https?:\/\//i.test(url) ? authorizationHeader(auth, '', GIT_AUTH) : undefined;
  const secrets = headerSecrets(header);
  const seconds = config.mirror.timeout_seconds;
  const pairs: Array<[string, string]> = [
    // Stall detection inside git too, in case a proxy keeps the connection alive.
    ['http.lowSpeedLimit', '1'],
    ['http.lowSpeedTime', String(seconds)],
    // Transports that run commands or read descriptors, never: even if a user's git allows them.
    ['protocol.ext.allow', 'never'],
    ['protocol.fd.allow', 'never'],
  ];
  if (header) pairs.push(['http.extraHeader', `Authorization: ${header}`]);
  return {
    url,
    branch,
    shown: redact(url, secrets),
    cwd: layout.root,
    env: gitConfigEnv(pairs),
    idleTimeoutMs: seconds * 1000,
    redact: (text) => redact(text, secrets),
  };
}

/** A git command that talks to the remote; its failure is redacted and told apart. */
async function remoteGit(
  remote: IndexRemote,
  describe: string,
  args: string[],
  okCodes: number[] = [],
): Promise<GitResult> {
  try {
    // --progress in args keeps a slow but live transfer from looking idle; stderr is kept, not shown.
    return await runGit(args, {
      cwd: remote.cwd,
      env: remote.env,
      idleTimeoutMs: remote.idleTimeoutMs,
      describe,
      okCodes,
    });
  } catch (error) {
    // "git push failed: fatal: X" says X: the message around it names the operation already.
    throw remoteFailure(
      remote,
      describeError(error)
        .replace(`${describe} failed: `, '')
        .replace(/^fatal: /, ''),
    );
  }
}

function remoteFailure(remote: IndexRemote, rawReason: string): RegistryError {
  const reason = remote.redact(rawReason);
  if (gitAuthRefused(reason)) {
    return new RegistryError('AUTH', `the remote refused the credentials: ${reason}`, {
      hint: 'check [git.auth] in registry.toml (for an ssh remote: your ssh key)',
    });
  }
  if (/couldn't find remote ref/i.test(reason)) {
    return new RegistryError('NOT_FOUND', `the remote has no branch ${remote.branch}`, {
      hint: 'push one there with `moonbit-registry sync --push` from the registry that has the index, or set git.branch',
    });
  }
  return new RegistryError('UPSTREAM', reason, {
    hint: 'check git.remote_url and that the remote is reachable',
  });
}

/** "cannot push ...: <reason>", keeping the reason's code and hint. */
function inContext(error: unknown, context: string): unknown {
  if (!isRegistryError(error)) return error;
  return new RegistryError(error.code, `${context}: ${error.message}`, {
    ...(error.hint ? { hint: error.hint } : {}),
    cause: error,
  });
}

async function pushTo(remote: IndexRemote, gitDir: string): Promise<PushOutcome> {
  const head = await resolveCommit(gitDir, MAIN);
  if (!head) throw new RegistryError('GIT', 'the served index has no commits yet');
  const target = `refs/heads/${remote.branch}`;
  // The exact commit, so the outcome names what was pushed even if main moves meanwhile.
  const { stdout, stderr } = await remoteGit(
    remote,
    'git push',
    [
      '--git-dir',
      gitDir,
      '-c',
      'core.abbrev=no',
      'push',
      '--porcelain',
      '--progress',
      remote.url,
      `${head}:${target}`,
    ],
    [1], // a rejected ref: stdout says why
  );
  const base = { remote: remote.shown, branch: remote.branch, to: head };
  const line = stdout
    .toString('utf8')
    .split('\n')
    .find((l) => l.split('\t')[1] === `${head}:${target}`);
  const [flag, , summary = ''] = line?.split('\t') ?? [];
  if (flag === '=') return { status: 'up-to-date', from: head, ...base };
  if (flag === '*') return { status: 'pushed', from: undefined, ...base };
  if (flag === ' ') return { status: 'pushed', from: summary.split('..')[0], ...base };
  if (flag === '!' && /^\[rejected\]/.test(summary)) {
    throw new RegistryError(
      'CONFLICT',
      `the remote's branch ${remote.branch} has commits this registry does not have`,
      {
        hint: 'run `moonbit-registry sync --pull` first to take them, or push to another branch (git.branch)',
      },
    );
  }
  throw remoteFailure(remote, summary || lastMeaningfulLine(stderr) || 'git push failed');
}

/** Fetches the remote branch into `ref`; returns its commit. */
async function fetchBranch(remote: IndexRemote, gitDir: string, ref: string): Promise<string> {
  await remoteGit(remote, 'git fetch', [
    '--git-dir',
    gitDir,
    'fetch',
    '--progress',
    '--no-tags',
    '--no-write-fetch-head',
    remote.url,
    `+refs/heads/${remote.branch}:${ref}`,
  ]);
  const commit = await resolveCommit(gitDir, ref);
  if (!commit) throw new RegistryError('GIT', `the remote's branch ${remote.branch} is not a commit`);
  return commit;
}

/** Under the registry lock: moves main to `incoming` if that keeps it moving forward. */
async function takeCommits(registry: Registry, remote: IndexRemote, incoming: string): Promise<PullOutcome> {
  const gitDir = registry.layout.indexDir;
  const local = await resolveCommit(gitDir, MAIN);
  const base = { remote: remote.shown, branch: remote.branch, from: local };
  if (local && (local === incoming || (await isAncestor(gitDir, incoming, local)))) {
    return { status: 'up-to-date', ...base, to: local, commits: 0 };
  }
  let status: PullOutcome['status'];
  if (local && (await isAncestor(gitDir, local, incoming))) status = 'fast-forward';
  else if (!local || (await isFresh(gitDir, local))) status = 'fresh';
  else {
    throw new RegistryError(
      'CONFLICT',
      `the remote's branch ${remote.branch} and this registry's index have diverged: taking it would rewrite the served history (clients' \`git pull\` of the index would break); nothing changed`,
      {
        hint: 'push this index to another branch instead (git.branch, then `moonbit-registry sync --push`), or pull into a fresh registry (`moonbit-registry init`)',
      },
    );
  }
  // With the old value, so a writer that moved main without the lock makes this fail, not vanish.
  await runGit(['--git-dir', gitDir, 'update-ref', MAIN, incoming, local ?? '']);
  const commits = await countCommits(gitDir, incoming, local);
  return { status, ...base, to: incoming, commits, served: await servedCounts(registry) };
}

async function isAncestor(gitDir: string, ancestor: string, descendant: string): Promise<boolean> {
  const { code } = await runGit(['--git-dir', gitDir, 'merge-base', '--is-ancestor', ancestor, descendant], {
    okCodes: [1],
  });
  return code === 0;
}

/** What `init` and first use create: one commit without parents, with an empty tree. */
async function isFresh(gitDir: string, commit: string): Promise<boolean> {
  const history = await runGit(['--git-dir', gitDir, 'rev-list', '--max-count=2', commit]);
  if (history.stdout.toString('utf8').trim().split('\n').length !== 1) return false;
  const tree = await runGit(['--git-dir', gitDir, 'ls-tree', commit]);
  return tree.stdout.length === 0;
}

async function countCommits(gitDir: string, to: string, from: string | undefined): Promise<number> {
  const { stdout } = await runGit([
    '--git-dir',
    gitDir,
    'rev-list',
    '--count',
    to,
    ...(from ? [`^${from}`] : []),
  ]);
  return Number(stdout.toString('utf8').trim());
}

async function servedCounts(registry: Registry): Promise<ServedCounts> {
  const snapshot = await registry.servedIndex.snapshot();
  const entries = [...(snapshot?.modules.values() ?? [])].flatMap((versions) => [...versions.values()]);
  const limit = pLimit(64);
  const stored = await Promise.all(
    entries.map((e) => limit(() => registry.store.has(e.module, e.version, e.checksum))),
  );
  const exclusive = moduleMatcher(registry.config.hosted.exclusive);
  const published = (await registry.hosted.catalog())?.modules ?? new Map();
  return {
    modules: snapshot?.modules.size ?? 0,
    versions: entries.length,
    withoutArchives: stored.filter((has) => !has).length,
    unpublishedExclusive: [...(snapshot?.modules.keys() ?? [])].filter(
      (m) => exclusive(m) && !published.has(m),
    ),
  };
}
