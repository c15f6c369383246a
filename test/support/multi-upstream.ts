/**
 * Helpers for tests that run a registry against several upstreams at once: a CLI runner that
 * keeps every line the CLI printed (to look for leaked secrets), hand edits of registry.toml,
 * walks over data/, the served index's history and per-upstream request bookkeeping.
 */
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { type CliOptions, type CliResult, runCli } from './cli.js';
import { type FakeUpstream, parseArchiveRequest, type RecordedRequest } from './fake-upstream.js';
import { git } from './git.js';

export interface RecordedRun extends CliResult {
  args: string[];
}

/** Runs the CLI in one registry folder with one environment, and remembers every output. */
export class CliSession {
  readonly runs: RecordedRun[] = [];

  constructor(
    readonly cwd: string,
    readonly env: Record<string, string | undefined>,
  ) {}

  async run(args: string[], options: CliOptions = {}): Promise<RecordedRun> {
    const result = await runCli(args, {
      cwd: this.cwd,
      ...options,
      env: { ...this.env, ...options.env },
    });
    const run = { args, ...result };
    this.runs.push(run);
    return run;
  }

  /** Like run, but throws with the CLI's own output on a non-zero exit. */
  async ok(args: string[], options: CliOptions = {}): Promise<RecordedRun> {
    const run = await this.run(args, options);
    if (run.code !== 0) {
      throw new Error(`moonbit-registry ${args.join(' ')} exited ${run.code}\n${run.stdout}\n${run.stderr}`);
    }
    return run;
  }

  /** Everything every run printed, stdout and stderr. */
  allOutput(): string {
    return this.runs.map((r) => `$ ${r.args.join(' ')}\n${r.stdout}\n${r.stderr}`).join('\n');
  }
}

/**
 * Inserts `block` (e.g. a `[sources.auth]` table) right after the `[[sources]]` table whose
 * `name` is `sourceName`, before the next table header (or at the end of the file).
 */
export function insertAfterSource(toml: string, sourceName: string, block: string): string {
  const lines = toml.split('\n');
  const nameLine = new RegExp(`^\\s*name\\s*=\\s*"${sourceName}"\\s*(#.*)?$`);
  let inSources = false;
  let found = -1;
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line.startsWith('[')) {
      if (found >= 0) {
        // Before the blank lines and comments that lead into the next table.
        let at = i;
        while (at > found && /^\s*(#.*)?$/.test(lines[at - 1] as string)) at--;
        lines.splice(at, 0, ...block.trimEnd().split('\n'));
        return lines.join('\n');
      }
      inSources = line === '[[sources]]';
      continue;
    }
    if (inSources && nameLine.test(line)) found = i;
  }
  if (found < 0) throw new Error(`no [[sources]] table named ${sourceName}`);
  return `${toml.trimEnd()}\n${block.trimEnd()}\n`;
}

/** Line indexes [name line, next table header) of the `[[sources]]` table named `sourceName`. */
function sourceTableRange(lines: string[], sourceName: string): { name: number; end: number } {
  const nameLine = new RegExp(`^\\s*name\\s*=\\s*"${sourceName}"\\s*(#.*)?$`);
  let inSources = false;
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line.startsWith('[')) {
      inSources = line === '[[sources]]';
      continue;
    }
    if (inSources && nameLine.test(line)) {
      let end = i + 1;
      while (end < lines.length && !(lines[end] as string).trim().startsWith('[')) end++;
      return { name: i, end };
    }
  }
  throw new Error(`no [[sources]] table named ${sourceName}`);
}

/**
 * Sets `key = "value"` (a basic string) in the `[[sources]]` table named `sourceName`: replaces
 * the key's line when it is there, else adds it right after the `name` line.
 */
export function setSourceKey(toml: string, sourceName: string, key: string, value: string): string {
  const lines = toml.split('\n');
  const { name, end } = sourceTableRange(lines, sourceName);
  const keyLine = new RegExp(`^\\s*${key}\\s*=`);
  const text = `${key} = ${JSON.stringify(value)}`;
  const at = lines.slice(name, end).findIndex((line) => keyLine.test(line));
  if (at >= 0) lines[name + at] = text;
  else lines.splice(name + 1, 0, text);
  return lines.join('\n');
}

/** The 1-based line of `key` in the `[[sources]]` table named `sourceName`. */
export function sourceKeyLine(toml: string, sourceName: string, key: string): number {
  const lines = toml.split('\n');
  const { name, end } = sourceTableRange(lines, sourceName);
  const keyLine = new RegExp(`^\\s*${key}\\s*=`);
  const at = lines.slice(name, end).findIndex((line) => keyLine.test(line));
  if (at < 0) throw new Error(`${sourceName} has no ${key}`);
  return name + at + 1;
}

/** Every regular file under dir, as absolute paths (dir may not exist). */
export async function listFiles(dir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await fs.readdir(dir, { recursive: true });
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const entry of entries) {
    const full = path.join(dir, entry);
    const stat = await fs.lstat(full);
    if (stat.isFile()) files.push(full);
  }
  return files.sort();
}

/** Files under dir whose bytes contain any of the needles (searched as UTF-8 bytes). */
export async function filesContaining(
  dir: string,
  needles: string[],
): Promise<Array<{ file: string; needle: string }>> {
  const hits: Array<{ file: string; needle: string }> = [];
  for (const file of await listFiles(dir)) {
    const bytes = await fs.readFile(file);
    for (const needle of needles) {
      if (bytes.includes(Buffer.from(needle, 'utf8'))) hits.push({ file, needle });
    }
  }
  return hits;
}

export async function gitHead(gitDir: string, ref = 'refs/heads/main'): Promise<string> {
  return (await git(['--git-dir', gitDir, 'rev-parse', ref])).trim();
}

export async function isAncestor(gitDir: string, ancestor: string, descendant: string): Promise<boolean> {
  try {
    await git(['--git-dir', gitDir, 'merge-base', '--is-ancestor', ancestor, descendant]);
    return true;
  } catch {
    return false;
  }
}

/** One upstream's requests after `mark` (an earlier `requests.length`); the log is never cleared. */
export function requestsSince(upstream: FakeUpstream, mark: number): RecordedRequest[] {
  return upstream.requests.slice(mark);
}

export function isGitRequest(request: RecordedRequest): boolean {
  return request.url.startsWith('/git/index');
}

/** `module@version` of every archive request in the list. */
export function archiveKeys(requests: RecordedRequest[]): string[] {
  const keys: string[] = [];
  for (const request of requests) {
    if (!request.url.startsWith('/user/')) continue;
    const ref = parseArchiveRequest(request.url.slice('/user/'.length).split('?')[0] ?? '');
    if (ref) keys.push(`${ref.module}@${ref.version}`);
  }
  return keys;
}

export async function getJson(url: string): Promise<{ status: number; body: unknown; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text };
}

/**
 * `init` a registry, then put a local upstream in place of the unreachable mooncakes.io preset,
 * under the same name and type, as the default source.
 */
export async function initWithLocalMooncakes(
  cli: CliSession,
  root: string,
  cwd: string,
  name: string,
  mooncakes: { url: string; indexUrl: string },
): Promise<void> {
  await cli.ok(['init', root, '--name', name], { cwd });
  // The default source cannot be removed: a placeholder default lets the preset go.
  await cli.ok(['source', 'add', 'bootstrap', '--url', 'http://127.0.0.1:9']);
  await cli.ok(['source', 'default', 'bootstrap']);
  await cli.ok(['source', 'remove', 'mooncakes']);
  await cli.ok([
    'source',
    'add',
    'mooncakes',
    '--type',
    'mooncakes',
    '--url',
    mooncakes.url,
    '--index-url',
    mooncakes.indexUrl,
    '--priority',
    '100',
  ]);
  await cli.ok(['source', 'default', 'mooncakes']);
  await cli.ok(['source', 'remove', 'bootstrap']);
}
