/**
 * Bad input and a misbehaving upstream: every failure gets a clear error, bounded in time, and
 * loses nothing (the served index and the archive store stay consistent).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { access, cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type CliResult,
  cliPath,
  copyRegistry,
  errorLines,
  initRegistryWithSource,
  parseJsonSummary,
  runCli,
  runCliOk,
  startServe,
  tempDir,
} from '../support/cli.js';
import { FakeUpstream, type Fault } from '../support/fake-upstream.js';
import { buildFixture, type Fixture, sha256Hex } from '../support/fixture.js';
import { git } from '../support/git.js';
import { download, type RegistryIndex, readServedIndex } from '../support/moon-client.js';

// ---------------------------------------------------------------------------------------------
// Helpers

/** Exactly one `error:` line (a `hint:` line may follow), and no stack trace. */
function theErrorLine(result: CliResult): string {
  const errors = errorLines(result.stderr);
  assert.equal(errors.length, 1, `expected one error line:\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /\n\s+at .+:\d+:\d+\)?$/m, 'stack trace printed');
  return errors[0] ?? '';
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function timed<T>(job: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await job;
  return { value, ms: Date.now() - started };
}

async function servedHead(root: string): Promise<string> {
  return (await git(['--git-dir', path.join(root, 'data', 'index'), 'rev-parse', 'refs/heads/main'])).trim();
}

let cloneCount = 0;

/** The served index as moon reads it, straight from data/index. */
function servedIndex(root: string): Promise<RegistryIndex> {
  return readServedIndex(root, path.join(scratch.path, `clone-${cloneCount++}`));
}

function servedVersions(index: RegistryIndex, module: string): string[] {
  return [...(index.modules.get(module)?.keys() ?? [])].sort();
}

/**
 * data/ holds only the expected layout; data/tmp is empty; every file under data/packages is a
 * `<sha256>.zip` whose bytes hash to its name; every served version has its archive on disk.
 */
async function assertConsistent(root: string): Promise<void> {
  const data = path.join(root, 'data');
  const allowed = new Set(['index', 'packages', 'sources', 'state', 'symbols', 'tmp', 'assets']);
  for (const name of await readdir(data)) assert.ok(allowed.has(name), `unexpected data/${name}`);
  const tmp = path.join(data, 'tmp');
  if (existsSync(tmp)) assert.deepEqual(await readdir(tmp, { recursive: true }), [], 'data/tmp is empty');
  const packages = path.join(data, 'packages');
  for (const entry of await readdir(packages, { recursive: true, withFileTypes: true })) {
    if (entry.isDirectory()) continue;
    const file = path.join(entry.parentPath, entry.name);
    assert.ok(entry.isFile(), `not a file: ${file}`);
    const match = /^([0-9a-f]{64})\.zip$/.exec(entry.name);
    assert.ok(match, `stray file in data/packages: ${path.relative(packages, file)}`);
    assert.equal(sha256Hex(await readFile(file)), match[1], `${file} holds other bytes than its name says`);
  }
  const index = await servedIndex(root);
  for (const [module, versions] of index.modules) {
    for (const [version, entry] of versions) {
      const file = path.join(packages, ...module.split('/'), version, `${entry.checksum}.zip`);
      await access(file).catch(() => assert.fail(`${module}@${version} is served but ${file} is missing`));
    }
  }
}

/**
 * Faults that apply to the first `times` requests of one archive only: the fake upstream counts
 * hits before it looks up a fault, so wrapping that lookup is enough.
 */
class TransientFaults {
  private readonly transient = new Map<string, { fault: Fault; times: number; from: number }>();

  constructor(private readonly upstream: FakeUpstream) {
    const faults = upstream.faults;
    const plainGet = Map.prototype.get;
    faults.get = (key: string): Fault | undefined => {
      const rule = this.transient.get(key);
      if (rule && this.hits(key) - rule.from <= rule.times) return rule.fault;
      return plainGet.call(faults, key) as Fault | undefined;
    };
  }

  set(key: string, fault: Fault, times: number): void {
    this.transient.set(key, { fault, times, from: this.hits(key) });
  }

  clear(): void {
    this.transient.clear();
  }

  private hits(key: string): number {
    return this.upstream.archiveHits.get(key) ?? 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Shared state

/** Ten versions, no dependencies. */
const MODULE = 'moonbitlang/regexp';

let fixture: Fixture;
let upstream: FakeUpstream;
let transient: TransientFaults;
let scratch: { path: string; remove: () => Promise<void> };
/** Just after init + source add (timeout 3 s), never mirrored into. */
let pristine: string;
let registries = 0;

function freshRegistry(settings: Record<string, string> = {}): Promise<string> {
  return copyRegistry(pristine, path.join(scratch.path, `registry-${registries++}`), settings);
}

function versionsOf(module: string): string[] {
  const versions = [...(fixture.modules.get(module)?.keys() ?? [])].sort();
  assert.ok(versions.length >= 5, `fixture precondition: ${module} has several versions`);
  return versions;
}

function key(version: string): string {
  return `${MODULE}@${version}`;
}

function hits(version: string): number {
  return upstream.archiveHits.get(key(version)) ?? 0;
}

describe('mirror failures: clear errors, nothing lost', () => {
  before(async () => {
    fixture = await buildFixture();
    upstream = await FakeUpstream.start({ fixture });
    transient = new TransientFaults(upstream);
    scratch = await tempDir('mr-failures-');
    const base = await initRegistryWithSource('up', upstream.url);
    try {
      await runCliOk(['config', 'mirror.timeout_seconds', '3'], { cwd: base.root });
      pristine = path.join(scratch.path, 'pristine');
      await cp(base.root, pristine, { recursive: true });
    } finally {
      await base.remove();
    }
  });

  after(async () => {
    transient?.clear();
    upstream?.faults.clear();
    await Promise.allSettled([upstream?.close(), fixture?.cleanup(), scratch?.remove()]);
  });

  describe('a failing upstream', () => {
    test('upstream down, unreachable or hanging on git: bounded failure naming the source, index unchanged', async () => {
      const root = await freshRegistry();
      await runCliOk(['mirror', MODULE], { cwd: root });
      const head = await servedHead(root);
      const nameAndUrl = (line: string) => {
        assert.match(line, /"up"/, `names the source: ${line}`);
        assert.match(line, new RegExp(escapeRegExp(upstream.url)), `names its URL: ${line}`);
      };
      const failsInBoundedTime = async () => {
        const { value: result, ms } = await timed(
          runCli(['mirror', MODULE], { cwd: root, timeoutMs: 30_000 }),
        );
        assert.notEqual(result.code, 0);
        assert.ok(ms < 20_000, `took ${ms} ms`);
        nameAndUrl(theErrorLine(result));
      };

      upstream.down();
      try {
        await failsInBoundedTime();
      } finally {
        upstream.up();
      }
      assert.equal(await servedHead(root), head);

      await upstream.close();
      try {
        await failsInBoundedTime();
      } finally {
        await upstream.restart();
      }
      assert.equal(await servedHead(root), head);

      upstream.gitFault = 'hang';
      try {
        const { value: result, ms } = await timed(
          runCli(['mirror', MODULE], { cwd: root, timeoutMs: 30_000 }),
        );
        assert.notEqual(result.code, 0);
        assert.ok(ms < 20_000, `took ${ms} ms`);
        const line = theErrorLine(result);
        nameAndUrl(line);
        assert.match(line, /time|progress/i, `says it timed out: ${line}`);
      } finally {
        upstream.gitFault = undefined;
      }
      assert.equal(await servedHead(root), head);
      await assertConsistent(root);

      // Back up: the same registry mirrors again without trouble.
      const ok = await runCli(['mirror', '-q', '--json', MODULE], { cwd: root });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(parseJsonSummary(ok).downloaded, 0);
    });

    test('a hanging archive fails in bounded time and is listed as failed', async () => {
      const root = await freshRegistry({ 'mirror.retries': '0' });
      const versions = versionsOf(MODULE);
      const stuck = versions[1] as string;
      upstream.faults.set(key(stuck), 'hang');
      try {
        const { value: result, ms } = await timed(
          runCli(['mirror', '--json', MODULE], { cwd: root, timeoutMs: 40_000 }),
        );
        assert.notEqual(result.code, 0);
        assert.ok(ms < 20_000, `took ${ms} ms`);
        const summary = parseJsonSummary(result);
        assert.deepEqual(
          summary.failures.map((f) => `${f.module}@${f.version}`),
          [key(stuck)],
        );
        assert.match(summary.failures[0]?.error ?? '', /tim(e|ed|ing) ?out|timeout/i);
        assert.equal(summary.downloaded, versions.length - 1);
      } finally {
        upstream.faults.delete(key(stuck));
      }
      const index = await servedIndex(root);
      assert.deepEqual(
        servedVersions(index, MODULE),
        versions.filter((v) => v !== stuck),
      );
      await assertConsistent(root);

      // Fault gone: the next run fetches only that archive.
      const requests = upstream.archiveRequests;
      const again = await runCli(['mirror', '-q', '--json', MODULE], { cwd: root });
      assert.equal(again.code, 0, again.stderr);
      assert.equal(parseJsonSummary(again).downloaded, 1);
      assert.equal(upstream.archiveRequests - requests, 1);
      assert.deepEqual(servedVersions(await servedIndex(root), MODULE), versions);
    });

    test('wrong bytes: not kept, reported (text and --json), not served; the rest is', async () => {
      const root = await freshRegistry();
      const versions = versionsOf(MODULE);
      const bad = versions[2] as string;
      const good = versions[3] as string;
      upstream.faults.set(key(bad), 'wrongBytes');
      try {
        const text = await runCli(['mirror', MODULE], { cwd: root });
        assert.notEqual(text.code, 0);
        const failedLine = text.stdout.split('\n').find((line) => line.includes(`failed ${key(bad)}`));
        assert.ok(failedLine, `the failure is listed:\n${text.stdout}`);
        assert.match(failedLine, /checksum/i);
        assert.match(theErrorLine(text), /1 of \d+/);
        const badDir = path.join(root, 'data', 'packages', ...MODULE.split('/'), bad);
        assert.deepEqual(existsSync(badDir) ? await readdir(badDir) : [], [], 'no archive kept for it');
        const index = await servedIndex(root);
        assert.deepEqual(
          servedVersions(index, MODULE),
          versions.filter((v) => v !== bad),
        );

        const json = await runCli(['mirror', '-q', '--json', MODULE], { cwd: root });
        assert.notEqual(json.code, 0);
        const summary = parseJsonSummary(json);
        assert.equal(summary.failed, 1);
        assert.equal(summary.downloaded, 0);
        assert.equal(summary.skipped, versions.length - 1);
        assert.equal(summary.failures[0]?.module, MODULE);
        assert.equal(summary.failures[0]?.version, bad);
        assert.match(summary.failures[0]?.error ?? '', /checksum/i);

        // Served: the good versions download, the bad one is a 404.
        const serve = await startServe(root);
        try {
          const entry = index.modules.get(MODULE)?.get(good);
          assert.ok(entry?.checksum);
          await download(serve.url, MODULE, good, entry.checksum);
          const missing = await fetch(`${serve.url}/user/${encodeURIComponent(`${MODULE}/${bad}`)}.zip`);
          assert.equal(missing.status, 404);
          await missing.arrayBuffer();
        } finally {
          await serve.stop();
        }
      } finally {
        upstream.faults.delete(key(bad));
      }
      await assertConsistent(root);

      // Fault gone: only the missing archive is fetched.
      const requests = upstream.archiveRequests;
      const hitsBefore = hits(bad);
      const fixed = await runCli(['mirror', '-q', '--json', MODULE], { cwd: root });
      assert.equal(fixed.code, 0, fixed.stderr);
      const summary = parseJsonSummary(fixed);
      assert.equal(summary.downloaded, 1);
      assert.equal(summary.failed, 0);
      assert.equal(upstream.archiveRequests - requests, 1);
      assert.equal(hits(bad) - hitsBefore, 1);
      assert.deepEqual(servedVersions(await servedIndex(root), MODULE), versions);
      await assertConsistent(root);
    });

    test('truncated body, reset and 5xx: retried, then reported; passing faults recover', async () => {
      const retries = 2;
      const root = await freshRegistry({ 'mirror.retries': String(retries) });
      const versions = versionsOf(MODULE);
      const faulted: Array<[string, Fault]> = [
        [versions[0] as string, 'truncate'],
        [versions[1] as string, 'reset'],
        [versions[2] as string, 'http500'],
      ];
      const hitsBefore = new Map(faulted.map(([v]) => [v, hits(v)]));
      for (const [version, fault] of faulted) upstream.faults.set(key(version), fault);
      try {
        const result = await runCli(['mirror', '--json', MODULE], { cwd: root });
        assert.notEqual(result.code, 0);
        const summary = parseJsonSummary(result);
        assert.deepEqual(summary.failures.map((f) => f.version).sort(), faulted.map(([v]) => v).sort());
        assert.equal(summary.downloaded, versions.length - faulted.length);
        for (const [version, fault] of faulted) {
          assert.equal(
            hits(version) - (hitsBefore.get(version) ?? 0),
            retries + 1,
            `${fault} on ${version}: one attempt plus ${retries} retries`,
          );
        }
        const byVersion = new Map(summary.failures.map((f) => [f.version, f.error]));
        assert.match(byVersion.get(versions[0] as string) ?? '', /truncat|broke off|closed|short|premature/i);
        assert.match(byVersion.get(versions[2] as string) ?? '', /500/);
        assert.match(result.stderr, /retry/i, 'retries are shown');
      } finally {
        for (const [version] of faulted) upstream.faults.delete(key(version));
      }
      assert.deepEqual(
        servedVersions(await servedIndex(root), MODULE),
        versions.filter((v) => !faulted.some(([f]) => f === v)),
      );
      await assertConsistent(root);

      // The same faults for the first request only: a retry gets through.
      const before = new Map(faulted.map(([v]) => [v, hits(v)]));
      const requests = upstream.archiveRequests;
      for (const [version, fault] of faulted) transient.set(key(version), fault, 1);
      try {
        const result = await runCli(['mirror', '-q', '--json', MODULE], { cwd: root });
        assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
        const summary = parseJsonSummary(result);
        assert.equal(summary.failed, 0);
        assert.equal(summary.downloaded, faulted.length, 'only the missing archives');
        assert.equal(
          upstream.archiveRequests - requests,
          faulted.length * 2,
          'a failed try and a retry each',
        );
        for (const [version] of faulted) assert.equal(hits(version) - (before.get(version) ?? 0), 2);
      } finally {
        transient.clear();
      }
      assert.deepEqual(servedVersions(await servedIndex(root), MODULE), versions);
      await assertConsistent(root);
    });

    test('a mirror killed mid-download leaves only verified archives; the next run recovers', async () => {
      const root = await freshRegistry();
      const versions = versionsOf(MODULE);
      const stuck = versions[5] as string;
      const head = await servedHead(root);
      const requests = upstream.archiveRequests;
      upstream.faults.set(key(stuck), 'hang');
      const child = spawn(process.execPath, [cliPath, 'mirror', MODULE], { cwd: root, stdio: 'ignore' });
      const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
      try {
        const started = Date.now();
        while (upstream.archiveRequests - requests < versions.length && Date.now() - started < 20_000) {
          await delay(20);
        }
        assert.equal(upstream.archiveRequests - requests, versions.length, 'every archive was asked for');
        await delay(300); // the others finish; the stuck one keeps the run busy
        assert.equal(child.exitCode, null, 'the mirror is still running');
        child.kill('SIGKILL');
        await exited;
      } finally {
        upstream.faults.delete(key(stuck));
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL');
          await exited;
        }
      }
      assert.equal(await servedHead(root), head, 'nothing was published');
      const packages = path.join(root, 'data', 'packages');
      let kept = 0;
      for (const entry of await readdir(packages, { recursive: true, withFileTypes: true })) {
        if (!entry.isFile()) continue;
        const match = /^([0-9a-f]{64})\.zip$/.exec(entry.name);
        assert.ok(match, `stray file in data/packages: ${entry.name}`);
        assert.equal(sha256Hex(await readFile(path.join(entry.parentPath, entry.name))), match[1]);
        kept++;
      }
      assert.ok(kept < versions.length, 'the stuck archive is not there');

      // The killed run could not release its lock; its owner is gone, so the next run takes it at once.
      assert.ok(existsSync(path.join(root, 'data', 'registry.lock')), 'the killed run left its lock');
      const next = await runCli(['mirror', '-q', '--json', MODULE], { cwd: root });
      assert.equal(next.code, 0, next.stderr);
      const summary = parseJsonSummary(next);
      assert.equal(summary.skipped, kept, 'archives of the killed run are reused');
      assert.equal(summary.downloaded, versions.length - kept);
      assert.deepEqual(servedVersions(await servedIndex(root), MODULE), versions);
      await assertConsistent(root);
    });

    test('two mirrors at once: the second fails fast on the lock, the first succeeds', async () => {
      const root = await freshRegistry({ 'mirror.concurrency': '2' });
      const big = 'moonbitlang/x';
      const bigVersions = versionsOf(big);
      const lock = path.join(root, 'data', 'registry.lock');
      upstream.latencyMs = 100;
      let first: Promise<CliResult> | undefined;
      try {
        first = runCli(['mirror', '-q', '--json', big], { cwd: root, timeoutMs: 60_000 });
        // Wait until the first one holds the lock (or is already done).
        const started = Date.now();
        let done = false;
        void first.then(() => {
          done = true;
        });
        while (!existsSync(lock) && !done && Date.now() - started < 20_000) await delay(20);
        assert.ok(existsSync(lock), 'the first mirror holds a lock while it runs');
        const { value: second, ms } = await timed(runCli(['mirror', MODULE], { cwd: root }));
        assert.notEqual(second.code, 0);
        assert.ok(ms < 5_000, `the second mirror took ${ms} ms to give up`);
        assert.match(theErrorLine(second), /another mirror \(pid \d+ .*\) is running on this registry/);
        assert.equal(done, false, 'the first mirror was still running when the second gave up');
        const firstResult = await first;
        assert.equal(firstResult.code, 0, firstResult.stderr);
        assert.equal(parseJsonSummary(firstResult).downloaded, bigVersions.length);
      } finally {
        upstream.latencyMs = 0;
        await first?.catch(() => undefined);
      }
      assert.equal(existsSync(lock), false, 'the lock is released');
      const index = await servedIndex(root);
      assert.deepEqual([...index.modules.keys()], [big], 'only the first mirror published');
      assert.deepEqual(servedVersions(index, big), bigVersions);
      await assertConsistent(root);
      // Recomputing the served index from what is on disk changes nothing.
      const head = await servedHead(root);
      const rebuilt = await runCli(['index', 'rebuild'], { cwd: root });
      assert.equal(rebuilt.code, 0, rebuilt.stderr);
      assert.match(rebuilt.stdout, /unchanged/);
      assert.equal(await servedHead(root), head);
      // And the registry works normally afterwards.
      const next = await runCli(['mirror', '-q', '--json', MODULE], { cwd: root });
      assert.equal(next.code, 0, next.stderr);
      await assertConsistent(root);
    });
  });

  describe('bad input', () => {
    test('init twice refuses without --force and succeeds with it (data kept)', async () => {
      const dir = path.join(scratch.path, 'init-twice');
      await runCliOk(['init', dir]);
      const config = path.join(dir, 'registry.toml');
      const marked = `# keep-me\n${await readFile(config, 'utf8')}`;
      await writeFile(config, marked);
      const head = await servedHead(dir);

      const again = await runCli(['init', dir]);
      assert.notEqual(again.code, 0);
      assert.match(theErrorLine(again), /exists/);
      assert.match(theErrorLine(again), /registry\.toml/);
      assert.equal(await readFile(config, 'utf8'), marked, 'the existing file is untouched');

      const forced = await runCli(['init', dir, '--force']);
      assert.equal(forced.code, 0, forced.stderr);
      assert.doesNotMatch(await readFile(config, 'utf8'), /keep-me/, 'registry.toml was rewritten');
      assert.equal(await servedHead(dir), head, 'the served index is kept');
    });

    test('init honours -d/--dir like every other command, never the current folder', async () => {
      const dir = path.join(scratch.path, 'init-dash-d');
      const cwd = path.join(scratch.path, 'init-cwd');
      await mkdir(cwd, { recursive: true });
      await runCliOk(['-d', dir, 'init', '--name', 'dashd'], { cwd });
      assert.match(await readFile(path.join(dir, 'registry.toml'), 'utf8'), /name = "dashd"/);
      assert.deepEqual(await readdir(cwd), [], 'nothing was created in the current folder');
    });

    test('a broken registry.toml: every command fails naming the file and the line', async () => {
      const root = await freshRegistry();
      const configPath = path.join(root, 'registry.toml');
      const good = await readFile(configPath, 'utf8');
      const lines = good.split('\n');
      const portLine = lines.findIndex((line) => /^port\s*=/.test(line));
      assert.ok(portLine >= 0);
      const commands = [
        ['source', 'list'],
        ['source', 'add', 'other', '--url', 'http://127.0.0.1:9'],
        ['source', 'default', 'up'],
        ['source', 'enable', 'up'],
        ['source', 'disable', 'up'],
        ['source', 'remove', 'up'],
        ['mirror', MODULE],
        ['serve', '--port', '0'],
        ['config'],
        ['config', 'server.port'],
        ['config', 'server.port', '9000'],
        ['update'],
        ['index', 'rebuild'],
        ['verify'],
      ];
      // Every command for the syntax error; the ones that read the file differently for the type error.
      const variants = [
        { what: 'syntax error', line: 'port = = 3', commands },
        {
          what: 'wrong type',
          line: 'port = "x"',
          commands: commands.filter((args) =>
            ['mirror', 'serve', 'config', 'update'].includes(args[0] ?? ''),
          ),
        },
      ];
      for (const variant of variants) {
        const broken = lines.map((line, i) => (i === portLine ? variant.line : line)).join('\n');
        await writeFile(configPath, broken);
        const results = await Promise.all(
          variant.commands.map(async (args) => ({
            args,
            result: await runCli(args, { cwd: root, timeoutMs: 20_000, env: { PATH: '/nonexistent' } }),
          })),
        );
        for (const { args, result } of results) {
          const label = `${variant.what}: ${args.join(' ')}`;
          assert.notEqual(result.code, 0, label);
          const line = theErrorLine(result);
          assert.ok(line.includes(configPath), `${label}: names the file: ${line}`);
          assert.match(
            line,
            new RegExp(`line ${portLine + 1}\\b`),
            `${label}: names line ${portLine + 1}: ${line}`,
          );
        }
        assert.equal(
          await readFile(configPath, 'utf8'),
          broken,
          `${variant.what}: the file is left as it was`,
        );
      }
      await writeFile(configPath, good);
    });

    test('an unclosed table header is reported at its own line', async () => {
      const root = await freshRegistry();
      const configPath = path.join(root, 'registry.toml');
      const lines = (await readFile(configPath, 'utf8')).split('\n');
      const header = lines.findIndex((line) => line.trim() === '[mirror]');
      assert.ok(header >= 0);
      lines[header] = '[mirror';
      await writeFile(configPath, lines.join('\n'));
      const result = await runCli(['source', 'list'], { cwd: root });
      assert.notEqual(result.code, 0);
      const line = theErrorLine(result);
      assert.ok(line.includes(configPath), line);
      assert.match(line, new RegExp(`line ${header + 1}\\b`), `points at the broken header: ${line}`);
    });

    test('a syntax error names its column as editors count it (from 1)', async () => {
      const root = await freshRegistry();
      const configPath = path.join(root, 'registry.toml');
      const lines = (await readFile(configPath, 'utf8')).split('\n');
      const portLine = lines.findIndex((line) => /^port\s*=/.test(line));
      assert.ok(portLine >= 0);
      const broken = 'port = = 3';
      lines[portLine] = broken;
      const column = broken.lastIndexOf('=') + 1; // the unexpected second "="
      await writeFile(configPath, lines.join('\n'));
      const result = await runCli(['config'], { cwd: root });
      assert.notEqual(result.code, 0);
      const line = theErrorLine(result);
      assert.match(line, new RegExp(`line ${portLine + 1}, column ${column}\\b`), line);
    });

    test('a misspelt key names its line', async () => {
      const root = await freshRegistry();
      const configPath = path.join(root, 'registry.toml');
      const lines = (await readFile(configPath, 'utf8')).split('\n');
      const portLine = lines.findIndex((line) => /^port\s*=/.test(line));
      assert.ok(portLine >= 0);
      lines[portLine] = 'prot = 8081';
      await writeFile(configPath, lines.join('\n'));
      const results = await Promise.all([
        runCli(['config'], { cwd: root }),
        runCli(['mirror', MODULE], { cwd: root }),
      ]);
      for (const result of results) {
        assert.notEqual(result.code, 0);
        const line = theErrorLine(result);
        assert.ok(line.includes(configPath), line);
        assert.match(line, /prot/, `names the key: ${line}`);
        assert.match(line, new RegExp(`line ${portLine + 1}\\b`), `names line ${portLine + 1}: ${line}`);
      }
    });

    test('an unknown source is named in the error', async () => {
      const root = await freshRegistry();
      const config = await readFile(path.join(root, 'registry.toml'), 'utf8');
      const [mirrorResult, enableResult] = await Promise.all([
        runCli(['mirror', '-s', 'nosuch', 'x/*'], { cwd: root }),
        runCli(['source', 'enable', 'nosuch'], { cwd: root }),
      ]);
      for (const result of [mirrorResult, enableResult]) {
        assert.notEqual(result.code, 0);
        assert.match(theErrorLine(result), /"?nosuch"?/);
        assert.match(theErrorLine(result), /source/i);
      }
      assert.equal(await readFile(path.join(root, 'registry.toml'), 'utf8'), config);
    });
  });
});
