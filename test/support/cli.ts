import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from './fixture.js';

/** The real CLI, as a user runs it: `bin/moonbit-registry` (needs `npm run build`). */
export const cliPath = join(repoRoot, 'bin', 'moonbit-registry');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/** Runs `moonbit-registry ARGS...` to completion; never throws on a non-zero exit. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      cwd: options.cwd,
      env: cliEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** Like runCli, but fails with the CLI's own output when the exit code is not 0. */
export async function runCliOk(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const result = await runCli(args, options);
  if (result.code !== 0) {
    throw new Error(
      `moonbit-registry ${args.join(' ')} exited ${result.code}\n${result.stdout}\n${result.stderr}`,
    );
  }
  return result;
}

function cliEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const [key, value] of Object.entries(extra)) if (value === undefined) delete env[key];
  return env;
}

export interface RunningServer {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
  output(): string;
}

/** `moonbit-registry serve --port 0` in `dir`; resolves once it prints the URL it listens on. */
export function startServe(
  dir: string,
  extraArgs: string[] = [],
  options: CliOptions = {},
): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, 'serve', '--port', '0', ...extraArgs], {
      cwd: dir,
      env: cliEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve did not start:\n${output}`));
    }, options.timeoutMs ?? 20_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const match = /at (https?:\/\/\S+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve({
          url: match[1],
          process: child,
          output: () => output,
          stop: () =>
            new Promise<void>((done) => {
              if (child.exitCode !== null) return done();
              child.once('close', () => done());
              child.kill('SIGTERM');
            }),
        });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before listening:\n${output}`));
    });
  });
}

/** A temp folder removed by the returned function. */
export async function tempDir(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/**
 * `init` a registry in a fresh temp folder with one local source as the default, and the
 * preset mooncakes.io source disabled (the real registry is not reachable from tests).
 */
export async function initRegistryWithSource(
  sourceName: string,
  sourceUrl: string,
  extraAddArgs: string[] = [],
) {
  const dir = await tempDir('mr-e2e-');
  const root = join(dir.path, 'registry');
  await runCliOk(['init', root, '--name', 'e2e']);
  await runCliOk(
    [
      'source',
      'add',
      sourceName,
      '--url',
      sourceUrl,
      '--index-url',
      `${sourceUrl}/git/index`,
      ...extraAddArgs,
    ],
    { cwd: root },
  );
  await runCliOk(['source', 'default', sourceName], { cwd: root });
  await runCliOk(['source', 'disable', 'mooncakes'], { cwd: root });
  return { root, remove: dir.remove };
}

/**
 * `initRegistryWithSource` kept at `path` as a pristine copy to start each test registry from
 * (copyRegistry): nothing fetched, nothing stored.
 */
export async function pristineRegistry(sourceName: string, sourceUrl: string, path: string): Promise<string> {
  const base = await initRegistryWithSource(sourceName, sourceUrl);
  try {
    await cp(base.root, path, { recursive: true });
  } finally {
    await base.remove();
  }
  return path;
}

export interface JsonFailure {
  module: string;
  version: string;
  error: string;
}

/** The documented fields of `mirror --json`. */
export interface JsonSummary {
  modules: number;
  versions: number;
  downloaded: number;
  skipped: number;
  failed: number;
  bytes: number;
  seconds: number;
  failures: JsonFailure[];
  warnings: string[];
  served: { modules: number; versions: number; commit: string; changed: boolean };
  sources: Record<string, { served: number; downloaded: number }>;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses `mirror --json` output and checks every documented field has the right type. */
export function parseJsonSummary(result: CliResult): JsonSummary {
  let value: unknown;
  try {
    value = JSON.parse(result.stdout);
  } catch {
    assert.fail(`--json printed no JSON:\n${result.stdout}\n${result.stderr}`);
  }
  assert.ok(isRecord(value), `--json output is not an object: ${result.stdout}`);
  for (const key of ['modules', 'versions', 'downloaded', 'skipped', 'failed', 'bytes', 'seconds']) {
    assert.equal(
      typeof value[key],
      'number',
      `--json field "${key}" missing or not a number: ${result.stdout}`,
    );
  }
  assert.ok(Array.isArray(value.failures), `--json field "failures" missing: ${result.stdout}`);
  assert.ok(Array.isArray(value.warnings), `--json field "warnings" missing: ${result.stdout}`);
  assert.ok(
    isRecord(value.served) && isRecord(value.sources),
    `--json "served"/"sources" missing: ${result.stdout}`,
  );
  const failures = value.failures.map((item: unknown): JsonFailure => {
    assert.ok(isRecord(item));
    assert.equal(typeof item.module, 'string');
    assert.equal(typeof item.version, 'string');
    assert.equal(typeof item.error, 'string');
    return { module: String(item.module), version: String(item.version), error: String(item.error) };
  });
  return {
    modules: Number(value.modules),
    versions: Number(value.versions),
    downloaded: Number(value.downloaded),
    skipped: Number(value.skipped),
    failed: Number(value.failed),
    bytes: Number(value.bytes),
    seconds: Number(value.seconds),
    failures,
    warnings: value.warnings.map(String),
    served: value.served as JsonSummary['served'],
    sources: value.sources as JsonSummary['sources'],
  };
}

/**
 * A copy of a registry folder made once and left untouched (`pristine`) at `to`, with
 * `config KEY VALUE` applied for each setting: every test starts from the same state quickly.
 */
export async function copyRegistry(
  pristine: string,
  to: string,
  settings: Record<string, string> = {},
): Promise<string> {
  await cp(pristine, to, { recursive: true });
  for (const [key, value] of Object.entries(settings)) await runCliOk(['config', key, value], { cwd: to });
  return to;
}

/** The `error:` lines of a command's output (the CLI prints one per failure, then maybe a hint). */
export function errorLines(text: string): string[] {
  return text.split('\n').filter((line) => line.startsWith('error:'));
}
