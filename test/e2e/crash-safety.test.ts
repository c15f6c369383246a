/**
 * Crash safety: `mirror` SIGKILLed at pseudo-random moments many times in a row, `serve --proxy`
 * SIGKILLed mid-download, and `mirror` stopped by SIGTERM/SIGINT. After every kill the served
 * index lists only versions whose archive is on disk with the right checksum, nothing partial is
 * ever in data/packages, leftovers of dead processes are cleared by the next run, the lock is
 * taken over, and what was verified before a kill is never downloaded again.
 *
 * The kill moments come from one seeded generator: a failure names the seed, and
 * `CRASH_SAFETY_SEED=<seed> node --import tsx --test test/e2e/crash-safety.test.ts` replays the
 * same sequence of kill plans (the timing of the machine still varies).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import {
  cliPath,
  copyRegistry,
  errorLines,
  initRegistryWithSource,
  isRecord,
  type JsonSummary,
  parseJsonSummary,
  type RunningServer,
  runCli,
  runCliOk,
  startServe,
  tempDir,
} from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, checksumIn, type Fixture, sha256Hex } from '../support/fixture.js';
import { git } from '../support/git.js';
import { download, type RegistryIndex, readServedIndex } from '../support/moon-client.js';
import { seededRandom } from '../support/random.js';

// ---------------------------------------------------------------------------------------------
// Settings

const SEED = Number(process.env.CRASH_SAFETY_SEED ?? 20260215);
/** SIGKILLs that must land on a live mirror (runs that finish before their kill do not count). */
const MIRROR_KILLS = 24;
const MAX_MIRROR_RUNS = 40;
const PROXY_KILLS = 5;
/** About 530 versions: every moonbitlang/* module and the dependencies they need. */
const BIG = 'moonbitlang/*';
/** Ten versions, no dependencies. */
const REGEXP = 'moonbitlang/regexp';

// ---------------------------------------------------------------------------------------------
// Shared state

let fixture: Fixture;
let upstream: FakeUpstream;
let scratch: { path: string; remove: () => Promise<void> };
/** Just after init + source add, concurrency 2, the source index fetched: nothing mirrored. */
let pristine: string;
let registries = 0;
let clones = 0;
const children = new Set<ChildProcess>();

// ---------------------------------------------------------------------------------------------
// Helpers

function keyOf(module: string, version: string): string {
  return `${module}@${version}`;
}

function hits(key: string): number {
  return upstream.archiveHits.get(key) ?? 0;
}

function freshRegistry(settings: Record<string, string> = {}): Promise<string> {
  return copyRegistry(pristine, path.join(scratch.path, `registry-${registries++}`), settings);
}

function versionsOf(module: string): string[] {
  return [...(fixture.modules.get(module)?.keys() ?? [])].sort();
}

/** The served index as moon reads it, straight from data/index (or data/proxy-index). */
function servedIndex(root: string, repo = 'index'): Promise<RegistryIndex> {
  return readServedIndex(root, path.join(scratch.path, `clone-${clones++}`), repo);
}

function listedKeys(index: RegistryIndex): string[] {
  const keys: string[] = [];
  for (const [module, versions] of index.modules)
    for (const version of versions.keys()) keys.push(keyOf(module, version));
  return keys.sort();
}

/**
 * module@version -> checksum of every archive in data/packages, after checking that each file
 * there is a `<sha256>.zip` whose bytes hash to its name: nothing partial, nothing unverified.
 */
async function storedArchives(root: string): Promise<Map<string, string>> {
  const packages = path.join(root, 'data', 'packages');
  const stored = new Map<string, string>();
  if (!existsSync(packages)) return stored;
  for (const entry of await readdir(packages, { recursive: true, withFileTypes: true })) {
    if (entry.isDirectory()) continue;
    const file = path.join(entry.parentPath, entry.name);
    assert.ok(entry.isFile(), `not a file: ${file}`);
    const match = /^([0-9a-f]{64})\.zip$/.exec(entry.name);
    assert.ok(match?.[1], `stray file in data/packages: ${path.relative(packages, file)}`);
    assert.equal(sha256Hex(await readFile(file)), match[1], `${file} holds other bytes than its name says`);
    const parts = path.relative(packages, entry.parentPath).split(path.sep);
    const version = parts.pop() as string;
    stored.set(keyOf(parts.join('/'), version), match[1]);
  }
  return stored;
}

/** Every version the served index lists has its archive on disk, with the listed checksum. */
async function assertServedAreStored(root: string, stored: Map<string, string>): Promise<string[]> {
  const index = await servedIndex(root);
  const packages = path.join(root, 'data', 'packages');
  for (const [module, versions] of index.modules) {
    for (const [version, entry] of versions) {
      assert.ok(entry.checksum, `${module}@${version} is served without a checksum`);
      const file = path.join(packages, ...module.split('/'), version, `${entry.checksum}.zip`);
      assert.ok(existsSync(file), `${module}@${version} is served but ${file} is missing`);
      // storedArchives hashed every file: the one served is among them, so its bytes are right.
      assert.ok(stored.has(keyOf(module, version)), `${module}@${version}: archive not seen in the store`);
    }
  }
  return listedKeys(index);
}

/** Folders of data/tmp, each checked to be a `<this host>-<pid>` process folder: pid -> files in it. */
async function tempFolders(root: string): Promise<Map<number, string[]>> {
  const tmp = path.join(root, 'data', 'tmp');
  const folders = new Map<number, string[]>();
  if (!existsSync(tmp)) return folders;
  for (const entry of await readdir(tmp, { withFileTypes: true })) {
    assert.ok(entry.isDirectory(), `a loose file in data/tmp: ${entry.name}`);
    const match = new RegExp(`^${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(\\d+)$`).exec(
      entry.name,
    );
    assert.ok(match?.[1], `data/tmp/${entry.name} is not a process folder of this machine`);
    folders.set(Number(match[1]), await readdir(path.join(tmp, entry.name), { recursive: true }));
  }
  return folders;
}

/**
 * data/ holds the registry layout; after a kill (`killed`: pids of killed runs) also the lock
 * it could not release, and the temp file of an owner record it was writing.
 */
async function assertDataLayout(
  root: string,
  killed: ReadonlySet<number> | undefined,
  options: { lock: boolean } = { lock: killed !== undefined },
): Promise<string[]> {
  const allowed = new Set([
    'index',
    'packages',
    'sources',
    'state',
    'symbols',
    'tmp',
    'proxy-index',
    'assets',
  ]);
  if (options.lock) {
    allowed.add('registry.lock');
    allowed.add('registry.owner.json');
  }
  const litter: string[] = [];
  for (const name of await readdir(path.join(root, 'data'))) {
    // Known: nothing clears this temp file of writeFileAtomic (only data/state is swept).
    const ownerTemp = /^\.registry\.owner\.json\.tmp-(\d+)-/.exec(name);
    if (ownerTemp && killed?.has(Number(ownerTemp[1]))) {
      litter.push(name);
      continue;
    }
    assert.ok(allowed.has(name), `unexpected data/${name}`);
  }
  return litter;
}

interface Spawned {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once stderr matches; false if the process exits first or the time runs out. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<boolean>;
}

/** The CLI as a child process (stderr is a pipe, so progress comes as log lines). */
function spawnCli(root: string, args: string[]): Spawned {
  const child = spawn(process.execPath, [cliPath, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    for (const watcher of [...watchers]) watcher();
  });
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => {
      children.delete(child);
      for (const watcher of [...watchers]) watcher();
      resolve({ code, signal });
    });
  });
  assert.ok(child.pid, 'the CLI started');
  return {
    child,
    pid: child.pid,
    stdout: () => stdout,
    stderr: () => stderr,
    closed,
    waitForStderr: (pattern, timeoutMs = 30_000) =>
      new Promise<boolean>((resolve) => {
        const check = () => {
          if (pattern.test(stderr)) done(true);
          else if (child.exitCode !== null || child.signalCode !== null) done(false);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        const done = (value: boolean) => {
          clearTimeout(timer);
          watchers.delete(check);
          resolve(value);
        };
        watchers.add(check);
        check();
      }),
  };
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function parseSummary(
  stdout: string,
  stderr: string,
): JsonSummary & { interrupted?: unknown; remaining?: unknown } {
  const summary = parseJsonSummary({ code: 0, stdout, stderr });
  const raw: unknown = JSON.parse(stdout);
  assert.ok(isRecord(raw));
  return { ...summary, interrupted: raw.interrupted, remaining: raw.remaining };
}

async function waitUntil(what: string, probe: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await delay(20);
  }
}

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return res.json();
}

/** `/health` until `probe` accepts it. */
async function waitForHealth(url: string, what: string, probe: (health: Record<string, unknown>) => boolean) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const health = await getJson(`${url}/health`);
    if (isRecord(health) && probe(health)) return;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}: ${JSON.stringify(health)}`);
    await delay(100);
  }
}

// ---------------------------------------------------------------------------------------------
// Kill plans

type Anchor = 'spawn' | 'downloading' | 'downloads-done';

interface KillPlan {
  pattern: string;
  /** What the delay counts from: the spawn, the first download, the last download. */
  anchor: Anchor;
  delayMs: number;
  latencyMs: number;
}

const ANCHORS: Record<Exclude<Anchor, 'spawn'>, RegExp> = {
  downloading: /^(downloading \d+ archives|nothing to download)/m,
  'downloads-done': /^(downloaded (\d+)\/\2 archives|nothing to download)/m,
};

/**
 * In turn: a kill anywhere in the start (lock, index fetch, selection, planning), one around the
 * end of a small module's downloads (publishing the index, recording the request, releasing the
 * lock), and two early in the downloads of the big selection, so that it lasts for every run.
 */
function planKill(run: number, random: () => number, small: string[]): KillPlan {
  const latencyMs = 5 + Math.floor(random() * 16);
  const delayMs = random();
  switch (run % 4) {
    case 0:
      return { pattern: BIG, anchor: 'spawn', delayMs: Math.floor(delayMs * 900), latencyMs };
    case 1: {
      const pattern = small[Math.floor(random() * small.length)] as string;
      return { pattern, anchor: 'downloads-done', delayMs: Math.floor(delayMs * 90), latencyMs };
    }
    default:
      return { pattern: BIG, anchor: 'downloading', delayMs: Math.floor(delayMs * 200), latencyMs };
  }
}

/** Where a run was when it was killed, from what it had logged. */
function phaseOf(stderr: string): string {
  if (!/index at/.test(stderr)) return 'start';
  if (!ANCHORS.downloading.test(stderr)) return 'selection';
  if (!ANCHORS['downloads-done'].test(stderr)) return 'downloads';
  return 'publish';
}

function describePlan(plan: KillPlan): string {
  return `mirror ${plan.pattern}, kill ${plan.delayMs} ms after ${plan.anchor}, latency ${plan.latencyMs} ms`;
}

// ---------------------------------------------------------------------------------------------
// Tests

describe('crash safety', () => {
  before(async () => {
    // The modules BIG needs, and only those: every run reads and plans a smaller index.
    fixture = await buildFixture({
      filter: (module) => /^(moonbitlang|Yoorkin|peter-jerry-ye|tonyfettes)\//.test(module),
    });
    upstream = await FakeUpstream.start({ fixture });
    scratch = await tempDir('mr-crash-');
    const base = await initRegistryWithSource('up', upstream.url);
    try {
      await runCliOk(['config', 'mirror.concurrency', '2'], { cwd: base.root });
      pristine = path.join(scratch.path, 'pristine');
      await cp(base.root, pristine, { recursive: true });
      // The source's index already fetched (only that): each run then fetches nothing new, so
      // the time goes to what is tested.
      await runCliOk(['mirror', '-q', '--strict', REGEXP], { cwd: base.root });
      await cp(path.join(base.root, 'data', 'sources'), path.join(pristine, 'data', 'sources'), {
        recursive: true,
      });
    } finally {
      await base.remove();
    }
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    upstream?.releaseStalls();
    await Promise.allSettled([upstream?.close(), fixture?.cleanup(), scratch?.remove()]);
  });

  test(`mirror SIGKILLed ${MIRROR_KILLS} times at seeded random moments: always consistent, nothing verified is fetched twice`, async (t) => {
    t.diagnostic(`seed ${SEED} (replay: CRASH_SAFETY_SEED=${SEED})`);
    const random = seededRandom(SEED);
    const small = [...fixture.modules.keys()]
      .filter((m) => /^moonbitlang\/[^/]+$/.test(m) && (fixture.modules.get(m)?.size ?? 0) <= 20)
      .sort();
    const root = await freshRegistry();
    upstream.clearRecords();
    /** module@version -> upstream hits when it was first seen verified on disk. */
    const verifiedHits = new Map<string, number>();
    /** Pids of killed runs whose temp folder may still be there. */
    const deadPids = new Set<number>();
    let kills = 0;
    let publishedWhileKilled = 0;
    let locksLeft = 0;
    let ownerlessLeft = 0;
    const phases = new Map<string, number>();
    const allKilled = new Set<number>();
    /** Temp files of the lock's owner record left by kills (known, never cleared). */
    const litter = new Set<string>();
    const log: string[] = [];
    try {
      for (let run = 0; kills < MIRROR_KILLS; run++) {
        assert.ok(run < MAX_MIRROR_RUNS, `only ${kills} of ${run} runs were killed while running`);
        const plan = planKill(run, random, small);
        upstream.latencyMs = plan.latencyMs;
        const headBefore = await git(['--git-dir', path.join(root, 'data', 'index'), 'rev-parse', 'main']);
        const mirror = spawnCli(root, ['mirror', plan.pattern]);
        if (plan.anchor !== 'spawn') await mirror.waitForStderr(ANCHORS[plan.anchor]);
        await delay(plan.delayMs);
        const phase = phaseOf(mirror.stderr());
        if (isRunning(mirror.child)) mirror.child.kill('SIGKILL');
        const { code, signal } = await mirror.closed;
        // A run may end on its own between the check and the kill: then it was not killed, and
        // is checked as a run that finished.
        const killed = signal === 'SIGKILL';
        const where = `run ${run} (${describePlan(plan)}, pid ${mirror.pid})`;
        log.push(`${where}: ${killed ? `killed in ${phase}` : `exited ${code}`}`);
        const stderr = mirror.stderr();
        assert.deepEqual(errorLines(stderr), [], `${where}: no error before the kill:\n${stderr}`);
        if (killed) {
          kills++;
          phases.set(phase, (phases.get(phase) ?? 0) + 1);
          deadPids.add(mirror.pid);
        } else {
          assert.equal(code, 0, `${where}: a run that was not killed succeeds:\n${stderr}`);
        }

        // Nothing partial or unverified in the store; the served index lists only stored archives.
        const stored = await storedArchives(root);
        const served = await assertServedAreStored(root, stored);
        const headAfter = await git(['--git-dir', path.join(root, 'data', 'index'), 'rev-parse', 'main']);
        if (killed && headAfter !== headBefore) publishedWhileKilled++;
        // A lock left behind names a killed run (this one, or an earlier one when this one was
        // killed before taking it over), so the next run takes it over at once (it fails
        // otherwise, which the check of its error lines catches).
        if (killed) allKilled.add(mirror.pid);
        const lockDir = path.join(root, 'data', 'registry.lock');
        const ownerFile = path.join(root, 'data', 'registry.owner.json');
        if (killed && existsSync(lockDir) && !existsSync(ownerFile)) {
          // Killed between taking the lock folder and recording its owner (or while releasing):
          // the next run must take it over once it has stayed ownerless for a few seconds.
          ownerlessLeft++;
        } else if (killed && existsSync(lockDir)) {
          const owner: unknown = JSON.parse(await readFile(ownerFile, 'utf8'));
          assert.ok(
            isRecord(owner) && allKilled.has(Number(owner.pid)),
            `${where}: the lock names a killed run: ${JSON.stringify(owner)}`,
          );
          locksLeft++;
        }
        for (const name of await assertDataLayout(root, allKilled, { lock: killed })) litter.add(name);

        // Temp files: only in folders of processes that are gone, and those are cleared by the next
        // run that gets as far as selecting versions (it clears them first).
        const folders = await tempFolders(root);
        const cleared = /versions selected/.test(stderr);
        for (const pid of folders.keys()) {
          assert.ok(deadPids.has(pid), `${where}: data/tmp holds a folder of pid ${pid}, not a killed run`);
          if (cleared)
            assert.equal(pid, mirror.pid, `${where}: the leftovers of killed pid ${pid} are cleared`);
        }
        if (!killed) assert.equal(folders.size, 0, `${where}: a finished run leaves data/tmp empty`);
        if (cleared) for (const pid of deadPids) if (pid !== mirror.pid) deadPids.delete(pid);

        // What is verified on disk is never asked for again.
        for (const [key, recorded] of verifiedHits) {
          assert.equal(hits(key), recorded, `${where}: ${key} was verified before, yet downloaded again`);
        }
        for (const key of stored.keys()) if (!verifiedHits.has(key)) verifiedHits.set(key, hits(key));
        log[log.length - 1] += `; ${stored.size} stored, ${served.length} served`;
      }

      // One last run finishes the job: only what is missing is downloaded.
      upstream.latencyMs = 5;
      const storedBefore = await storedArchives(root);
      const requests = upstream.archiveRequests;
      const final = await runCli(['mirror', '-q', '--json', BIG], { cwd: root, timeoutMs: 60_000 });
      assert.equal(final.code, 0, `the last mirror succeeds:\n${final.stdout}\n${final.stderr}`);
      const summary = parseJsonSummary(final);
      assert.equal(summary.failed, 0);
      assert.equal(summary.skipped, storedBefore.size, 'every archive of the killed runs is reused');
      assert.equal(summary.downloaded, summary.versions - storedBefore.size, 'the rest is downloaded');
      assert.equal(
        upstream.archiveRequests - requests,
        summary.downloaded,
        'one request per missing archive',
      );
      for (const [key, recorded] of verifiedHits) {
        assert.equal(hits(key), recorded, `${key} was verified before, yet downloaded again`);
      }
      const stored = await storedArchives(root);
      const served = await assertServedAreStored(root, stored);
      assert.equal(served.length, summary.versions, 'the served index lists everything selected');
      assert.deepEqual(served, [...stored.keys()].sort(), 'and exactly what is stored');
      assert.equal((await tempFolders(root)).size, 0, 'data/tmp is empty');
      await assertDataLayout(root, allKilled, { lock: false });
      const state = await readdir(path.join(root, 'data', 'state'));
      assert.deepEqual(
        state.filter((name) => name.startsWith('.')),
        [],
        'no temp file left in data/state',
      );
      t.diagnostic(
        `${kills} kills in ${log.length} runs (${[...phases].map(([p, n]) => `${n} in ${p}`).join(', ')}), ` +
          `${publishedWhileKilled} after an index commit, ${locksLeft} leaving the lock to the next run (${ownerlessLeft} without its owner file); ` +
          `the last run downloaded ${summary.downloaded}`,
      );
      for (const line of log) t.diagnostic(line);
      for (const name of litter) t.diagnostic(`known issue: data/${name} left by a kill, never cleared`);

      // What is served downloads with the right bytes.
      const server = await startServe(root);
      try {
        const index = await servedIndex(root);
        const jobs: Array<[string, string, string]> = [];
        for (const [module, versions] of index.modules)
          for (const [version, entry] of versions) jobs.push([module, version, entry.checksum as string]);
        for (let i = 0; i < jobs.length; i += 32) {
          await Promise.all(jobs.slice(i, i + 32).map(([m, v, c]) => download(server.url, m, v, c)));
        }
      } finally {
        await server.stop();
      }
    } catch (error) {
      if (error instanceof Error) {
        error.message = `[seed ${SEED}; replay with CRASH_SAFETY_SEED=${SEED}]\n${log.join('\n')}\n${error.message}`;
      }
      throw error;
    } finally {
      upstream.latencyMs = 0;
    }
  });

  test('a lock a kill left without its owner file is taken over by the next run', async () => {
    const root = await freshRegistry();
    // A SIGKILL between taking the lock folder and writing registry.owner.json leaves this, as
    // does one between the two steps of releasing the lock (the owner file goes first).
    await mkdir(path.join(root, 'data', 'registry.lock'));
    const result = await runCli(['mirror', '-q', '--json', REGEXP], { cwd: root, timeoutMs: 30_000 });
    assert.equal(result.code, 0, result.stderr);
  });

  test('SIGTERM: no new downloads, what completed is served, exit 143 with an interrupted --json summary; the next run fetches only the rest', async () => {
    const root = await freshRegistry();
    upstream.clearRecords();
    upstream.latencyMs = 20;
    let summary: ReturnType<typeof parseSummary>;
    try {
      const mirror = spawnCli(root, ['mirror', '--json', BIG]);
      // The first progress line comes after 5 % of the archives.
      assert.ok(await mirror.waitForStderr(/^downloaded [1-9]\d*\/\d+ archives/m), mirror.stderr());
      mirror.child.kill('SIGTERM');
      const { code, signal } = await mirror.closed;
      const stderr = mirror.stderr();
      assert.equal(signal, null, 'it exits by itself');
      assert.equal(code, 143, `exit status 128 + 15:\n${stderr}`);
      const stopping = /^stopping \(SIGTERM\): no new downloads; (\d+) in flight/m.exec(stderr);
      assert.ok(stopping, `the signal is acknowledged:\n${stderr}`);
      assert.ok(
        Number(stopping[1]) <= 4,
        'at most twice mirror.concurrency (2) downloads are launched at once',
      );
      assert.match(stderr, /^error: interrupted by SIGTERM: \d+ of \d+ selected versions not mirrored/m);
      summary = parseSummary(mirror.stdout(), stderr);
    } finally {
      upstream.latencyMs = 0;
    }
    assert.equal(summary.interrupted, true);
    assert.equal(summary.failed, 0);
    assert.ok(summary.downloaded > 0, 'some downloads completed');
    assert.ok(typeof summary.remaining === 'number' && summary.remaining > 0, 'some were never started');
    assert.equal(summary.downloaded + summary.remaining, summary.versions);
    assert.equal(
      upstream.archiveRequests,
      summary.downloaded,
      'every download launched was completed and kept',
    );

    const stored = await storedArchives(root);
    assert.equal(stored.size, summary.downloaded);
    const served = await assertServedAreStored(root, stored);
    assert.deepEqual(
      served,
      [...stored.keys()].sort(),
      'the served index lists exactly the completed versions',
    );
    assert.equal(summary.served.versions, served.length);
    assert.equal((await tempFolders(root)).size, 0, 'its temp folder is removed');
    await assertDataLayout(root, undefined);
    assert.equal(
      existsSync(path.join(root, 'data', 'state', 'mirror-requests.json')),
      false,
      'an interrupted request is not kept for serve to carry on',
    );

    const before = new Map([...stored.keys()].map((key) => [key, hits(key)]));
    const requests = upstream.archiveRequests;
    const next = await runCli(['mirror', '-q', '--json', BIG], { cwd: root, timeoutMs: 60_000 });
    assert.equal(next.code, 0, next.stderr);
    const rest = parseSummary(next.stdout, next.stderr);
    assert.equal(rest.interrupted, false);
    assert.equal(rest.skipped, summary.downloaded);
    assert.equal(rest.downloaded, summary.remaining, 'only the rest is downloaded');
    assert.equal(upstream.archiveRequests - requests, rest.downloaded);
    for (const [key, count] of before) assert.equal(hits(key), count, `${key} is not downloaded again`);
    const all = await storedArchives(root);
    assert.deepEqual(await assertServedAreStored(root, all), [...all.keys()].sort());
    assert.equal(all.size, summary.versions);
  });

  test('SIGINT: a download in flight may finish but is not retried; a second SIGINT exits at once; nothing is lost', async () => {
    const versions = versionsOf(REGEXP);
    const stuck = versions[3] as string;
    const stuckKey = keyOf(REGEXP, stuck);
    upstream.faults.set(stuckKey, 'hang');
    try {
      // Once: the hanging download times out (3 s) and is not retried; the rest is published.
      const once = await freshRegistry({ 'mirror.timeout_seconds': '3', 'mirror.retries': '3' });
      upstream.clearRecords();
      const first = spawnCli(once, ['mirror', REGEXP]);
      assert.ok(await first.waitForStderr(/^downloaded 9\/10 archives/m), first.stderr());
      await waitUntil('the stuck archive is asked for', () => hits(stuckKey) === 1);
      first.child.kill('SIGINT');
      const { code } = await first.closed;
      assert.equal(code, 130, first.stderr());
      assert.match(first.stderr(), /^stopping \(SIGINT\): no new downloads; 1 in flight/m);
      assert.equal(hits(stuckKey), 1, 'not retried after the signal');
      assert.match(first.stdout(), /^Interrupted by SIGINT: 1 versions not mirrored/m);
      assert.match(first.stdout(), /^Mirrored \d+ modules, 10 versions: 9 downloaded/m);
      assert.equal(errorLines(first.stderr()).length, 1, first.stderr());
      const stored = await storedArchives(once);
      assert.deepEqual(
        await assertServedAreStored(once, stored),
        versions.filter((v) => v !== stuck).map((v) => keyOf(REGEXP, v)),
      );

      // Twice: the second signal does not wait for the hanging download (30 s timeout).
      const twice = await freshRegistry({ 'mirror.timeout_seconds': '30' });
      const head = await git(['--git-dir', path.join(twice, 'data', 'index'), 'rev-parse', 'main']);
      upstream.clearRecords();
      const second = spawnCli(twice, ['mirror', REGEXP]);
      assert.ok(await second.waitForStderr(/^downloaded 9\/10 archives/m), second.stderr());
      await waitUntil('the stuck archive is asked for', () => hits(stuckKey) === 1);
      second.child.kill('SIGINT');
      assert.ok(await second.waitForStderr(/^stopping \(SIGINT\)/m), second.stderr());
      await delay(500);
      assert.ok(isRunning(second.child), 'the first signal waits for the download in flight');
      const signalled = Date.now();
      second.child.kill('SIGINT');
      const { code: code2 } = await second.closed;
      assert.equal(code2, 130, second.stderr());
      assert.ok(Date.now() - signalled < 3000, `exited ${Date.now() - signalled} ms after the second signal`);
      assert.equal(
        await git(['--git-dir', path.join(twice, 'data', 'index'), 'rev-parse', 'main']),
        head,
        'nothing published',
      );
      const kept = await storedArchives(twice);
      assert.equal(kept.size, 9, 'the completed downloads are on disk');
      await assertServedAreStored(twice, kept);
      assert.deepEqual(
        [...(await tempFolders(twice)).keys()],
        [second.pid],
        'only its own temp folder is left',
      );

      upstream.faults.delete(stuckKey);
      const next = await runCli(['mirror', '-q', '--json', REGEXP], { cwd: twice });
      assert.equal(next.code, 0, next.stderr);
      const summary = parseJsonSummary(next);
      assert.equal(summary.skipped, 9);
      assert.equal(summary.downloaded, 1);
      assert.equal((await tempFolders(twice)).size, 0, 'the dead run leftovers are cleared');
      const all = await storedArchives(twice);
      assert.deepEqual(
        await assertServedAreStored(twice, all),
        versions.map((v) => keyOf(REGEXP, v)),
      );
    } finally {
      upstream.faults.delete(stuckKey);
    }
  });

  test(`serve --proxy SIGKILLed mid-download ${PROXY_KILLS} times: nothing partial is stored, the next start clears the leftovers and serves the archive`, async (t) => {
    t.diagnostic(`seed ${SEED}`);
    const random = seededRandom(SEED ^ 0x9e3779b9);
    const root = await freshRegistry();
    const versions = versionsOf(REGEXP);
    upstream.clearRecords();
    upstream.stallMs = 60_000;
    let server: RunningServer | undefined;
    let killedPid: number | undefined;
    let pending: string | undefined;
    try {
      for (let round = 0; round <= PROXY_KILLS; round++) {
        server = await startServe(root, ['--proxy']);
        const live = server.process.pid as number;
        await waitForHealth(
          server.url,
          'the first index sync',
          (h) => isRecord(h.sync) && h.sync.last_run != null,
        );
        const folders = await tempFolders(root);
        assert.ok(
          !killedPid || !folders.has(killedPid),
          `the leftovers of killed serve ${killedPid} are cleared`,
        );
        assert.deepEqual([...folders.keys()], [live], 'only the live server has a temp folder');

        if (pending) {
          // The archive whose download was killed: fetched again, served whole, stored verified.
          const checksum = checksumIn(fixture, REGEXP, pending);
          const before = hits(keyOf(REGEXP, pending));
          await download(server.url, REGEXP, pending, checksum);
          assert.equal(hits(keyOf(REGEXP, pending)), before + 1);
          await waitForHealth(server.url, 'the download to be stored', (h) => h.fetching === 0);
          assert.equal((await storedArchives(root)).get(keyOf(REGEXP, pending)), checksum);
        }
        if (round === PROXY_KILLS) break;

        const version = versions[round] as string;
        const key = keyOf(REGEXP, version);
        upstream.faults.set(key, 'stall');
        const stallsBefore = upstream.stalls.length;
        const client = fetch(`${server.url}/user/${encodeURIComponent(`${REGEXP}/${version}`)}.zip`).then(
          (res) => res.arrayBuffer(),
        );
        client.catch(() => undefined);
        for (let i = 0; i < 200; i++) {
          const stall = upstream.stalls[stallsBefore];
          if (stall && stall.firstHalfAt > 0) break;
          await delay(25);
        }
        assert.ok((upstream.stalls[stallsBefore]?.firstHalfAt ?? 0) > 0, 'the download is under way');
        await delay(Math.floor(random() * 100));
        const partial = (await tempFolders(root)).get(live) ?? [];
        assert.ok(
          partial.some((name) => name.endsWith('.part')),
          `half the archive is in a temp file: ${partial.join(', ')}`,
        );
        const exited = new Promise((resolve) => server?.process.once('close', resolve));
        server.process.kill('SIGKILL');
        await exited;
        await assert.rejects(client, 'the client sees the download cut');
        killedPid = live;
        server = undefined;
        upstream.faults.delete(key);
        upstream.releaseStalls();

        const stored = await storedArchives(root);
        assert.equal(stored.has(key), false, `${key}: nothing stored from the cut download`);
        assert.ok((await tempFolders(root)).has(killedPid), 'the dead server left its temp folder');
        await assertDataLayout(root, undefined);
        pending = version;
      }
    } finally {
      upstream.releaseStalls();
      upstream.stallMs = 1500;
      for (const version of versions) upstream.faults.delete(keyOf(REGEXP, version));
      await server?.stop();
    }
    const stored = await storedArchives(root);
    assert.deepEqual(
      [...stored.keys()].sort(),
      versions.slice(0, PROXY_KILLS).map((v) => keyOf(REGEXP, v)),
      'each archive whose download was killed is stored once fetched again',
    );
    assert.equal((await tempFolders(root)).size, 0, 'a stopped server removes its temp folder');
  });
});
