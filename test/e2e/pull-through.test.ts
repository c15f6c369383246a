/**
 * Pull-through serving (`serve --proxy`), end to end: the real CLI as a child process in front
 * of a fake mooncakes.io, and a moon-like client. Nothing is mirrored beforehand: the served
 * index lists every upstream version, archives are fetched (once), verified, streamed and stored
 * on first request, and failures of the upstream give bounded, clear answers.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import semver from 'semver';
import {
  copyRegistry,
  isRecord,
  pristineRegistry,
  type RunningServer,
  runCliOk,
  startServe,
  tempDir,
} from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, checksumIn, type Fixture, sha256Hex } from '../support/fixture.js';
import {
  archiveUrl,
  download,
  install,
  latest,
  type RegistryIndex,
  readIndex,
  resolve,
  USER_AGENT,
  update,
} from '../support/moon-client.js';
import { getJson, listFiles } from '../support/multi-upstream.js';

// ---------------------------------------------------------------------------------------------
// Constants

/** A distinctive source name, so error messages can be checked for it. */
const SOURCE = 'fakecakes';
const X = 'moonbitlang/x';
/** Its latest version depends on moonbitlang/x, moonbitlang/parser and Yoorkin/* modules. */
const FORMATTER = 'moonbitlang/formatter';
/** Ten versions, no dependencies: one version per test that needs an archive nobody asked for. */
const REGEXP = 'moonbitlang/regexp';
/** Published by the upstream during the sync tests. */
const NEW_MODULE = 'pull-through-e2e/fresh';
const ADMIN_TOKEN = 'pt-admin-7f3a9c';

// ---------------------------------------------------------------------------------------------
// Shapes of /health and POST /admin/sync

interface SourceReport {
  name: string;
  state: 'ok' | 'failing' | 'unknown';
  circuit: 'closed' | 'open' | 'half-open';
  failing_since: string | null;
  last_error: string | null;
  retry_at: string | null;
  last_success: string | null;
  last_sync: string | null;
  index_commit: string | null;
}

interface IndexReport {
  commit: string;
  changed: boolean;
  modules: number;
  versions: number;
}

interface SyncRun {
  trigger: string;
  started: string;
  seconds: number;
  index?: IndexReport;
}

interface Health {
  status: string;
  mode: 'proxy' | 'mirror';
  index: { commit: string | null; modules: number };
  sync?: {
    auto: boolean;
    interval_seconds: number | null;
    running: boolean;
    next_run: string | null;
    last_run: SyncRun | null;
    last_error: string | null;
  };
  sources?: SourceReport[];
  fetching?: number;
}

interface SyncReport extends SyncRun {
  sources: Array<{ name: string; result: string; commit: string | null; error?: string }>;
}

// ---------------------------------------------------------------------------------------------
// Shared state

let fixture: Fixture;
let upstream: FakeUpstream;
let scratch: { path: string; remove: () => Promise<void> };
/** Just after init + `source add fakecakes` (mooncakes.io disabled): nothing fetched, nothing stored. */
let pristine: string;
let registries = 0;
let homes = 0;
const running = new Set<RunningServer>();

// ---------------------------------------------------------------------------------------------
// Helpers

function keyOf(module: string, version: string): string {
  return `${module}@${version}`;
}

function hits(module: string, version: string): number {
  return upstream.archiveHits.get(keyOf(module, version)) ?? 0;
}

/** A copy of the pristine registry, with `config KEY VALUE` applied for each setting. */
function newRegistry(settings: Record<string, string> = {}): Promise<string> {
  return copyRegistry(pristine, path.join(scratch.path, `registry-${registries++}`), settings);
}

function newMoonHome(): string {
  return path.join(scratch.path, `moon-home-${homes++}`);
}

/** Polls `probe` until it gives something other than undefined/false; fails after `timeoutMs`. */
async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(intervalMs);
  }
}

async function health(url: string): Promise<Health> {
  const { status, body, text } = await getJson(`${url}/health`);
  assert.equal(status, 200, `/health answered ${status}: ${text}`);
  assert.ok(isRecord(body), `/health is not a JSON object: ${text}`);
  assert.equal(body.status, 'ok', text);
  return body as unknown as Health;
}

/**
 * Waits until no pull-through download is in progress. A client has its bytes as soon as they are
 * verified, a little before the archive is fsynced and renamed into the store: look at the disk
 * only after this.
 */
async function settled(url: string): Promise<void> {
  await waitFor('no pull-through download in progress', async () => (await health(url)).fetching === 0);
}

function sourceReport(h: Health): SourceReport {
  const report = h.sources?.find((s) => s.name === SOURCE);
  assert.ok(report, `/health lists no source "${SOURCE}": ${JSON.stringify(h)}`);
  return report;
}

async function serve(root: string, args: string[], env: Record<string, string> = {}): Promise<RunningServer> {
  const server = await startServe(root, args, { env });
  running.add(server);
  return server;
}

async function stopServer(server: RunningServer): Promise<void> {
  await server.stop();
  running.delete(server);
}

/** `serve` (with --proxy unless told otherwise) once its first index sync has run. */
async function startProxy(
  root: string,
  options: { args?: string[]; env?: Record<string, string> } = {},
): Promise<RunningServer> {
  const server = await serve(root, options.args ?? ['--proxy'], options.env);
  await waitFor('the first index sync', async () => {
    // A fresh proxy answers 503 "starting" until its first index is fetched.
    const { status, body } = await getJson(`${server.url}/health`);
    if (status === 503 && isRecord(body) && body.status === 'starting') return undefined;
    const h = await health(server.url);
    return h.sync?.last_run ? h : undefined;
  });
  return server;
}

async function postSync(
  url: string,
  authorization?: string,
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(`${url}/admin/sync`, {
    method: 'POST',
    headers: authorization === undefined ? {} : { Authorization: authorization },
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body, headers: res.headers };
}

interface RawResponse {
  /** 0 when no response came at all. */
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The whole message arrived, with as many bytes as Content-Length promised. */
  complete: boolean;
  /** What broke the request or the body, if anything did. */
  error?: string;
  ms: number;
  /** performance.now() of each 'data' event, with its size. */
  chunks: Array<{ at: number; bytes: number }>;
}

/** A plain node:http GET on its own connection that records when each piece of the body came. */
function rawGet(url: string, onFirstData?: () => void): Promise<RawResponse> {
  const started = performance.now();
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    const chunks: RawResponse['chunks'] = [];
    let done = false;
    let error: string | undefined;
    const finish = (status: number, headers: http.IncomingHttpHeaders, complete: boolean) => {
      if (done) return;
      done = true;
      const body = Buffer.concat(parts);
      const declared = headers['content-length'];
      const whole = complete && (declared === undefined || Number(declared) === body.length);
      resolve({
        status,
        headers,
        body,
        complete: whole,
        ...(error === undefined ? {} : { error }),
        ms: performance.now() - started,
        chunks,
      });
    };
    const req = http.get(url, { agent: false, headers: { 'User-Agent': USER_AGENT } }, (res) => {
      res.on('data', (chunk: Buffer) => {
        if (chunks.length === 0) onFirstData?.();
        chunks.push({ at: performance.now(), bytes: chunk.length });
        parts.push(chunk);
      });
      res.on('error', (e) => {
        error = e.message;
      });
      res.on('close', () => finish(res.statusCode ?? 0, res.headers, res.complete && error === undefined));
    });
    req.setTimeout(60_000, () => req.destroy(new Error('client timeout')));
    req.on('error', (e) => {
      error = e.message;
      finish(0, {}, false);
    });
  });
}

function jsonError(response: RawResponse): string {
  let body: unknown;
  try {
    body = JSON.parse(response.body.toString('utf8'));
  } catch {
    assert.fail(`expected a JSON error body, got: ${response.body.toString('utf8')}`);
  }
  assert.ok(isRecord(body) && typeof body.error === 'string', `no "error" field: ${JSON.stringify(body)}`);
  return body.error;
}

/** Files under data/packages/<module>/<version>/ (none when the folder does not exist). */
async function storedFiles(root: string, module: string, version: string): Promise<string[]> {
  return listFiles(path.join(root, 'data', 'packages', ...module.split('/'), version));
}

/** `module@version` of every archive under data/packages, checking each name is its hash. */
async function storedVersions(root: string): Promise<string[]> {
  const packages = path.join(root, 'data', 'packages');
  const keys: string[] = [];
  for (const file of await listFiles(packages)) {
    const rel = path.relative(packages, file).split(path.sep);
    const name = rel.pop() as string;
    const version = rel.pop() as string;
    const match = /^([0-9a-f]{64})\.zip$/.exec(name);
    assert.ok(match, `stray file in data/packages: ${file}`);
    assert.equal(sha256Hex(await readFile(file)), match[1], `${file} holds other bytes than its name says`);
    keys.push(keyOf(rel.join('/'), version));
  }
  return keys.sort();
}

/** data/tmp may hold per-process folders, never a file (a partial or a rejected download). */
async function assertNoTempFiles(root: string): Promise<void> {
  assert.deepEqual(await listFiles(path.join(root, 'data', 'tmp')), [], 'files left in data/tmp');
}

function listedKeys(index: RegistryIndex): string[] {
  const keys: string[] = [];
  for (const [module, versions] of index.modules)
    for (const version of versions.keys()) keys.push(keyOf(module, version));
  return keys.sort();
}

function fixtureVersions(module: string): string[] {
  const versions = [...(fixture.modules.get(module)?.keys() ?? [])].filter((v) => semver.valid(v));
  assert.ok(versions.length > 0, `fixture precondition: ${module} has versions`);
  return versions.sort(semver.compareBuild);
}

/** `GET /user/<module>`: version -> { source, stored }. */
async function moduleInfo(
  url: string,
  module: string,
): Promise<Map<string, { source: string | null; stored: boolean; checksum: string }>> {
  const { status, body, text } = await getJson(`${url}/user/${module}`);
  assert.equal(status, 200, text);
  assert.ok(isRecord(body) && Array.isArray(body.versions), text);
  const out = new Map<string, { source: string | null; stored: boolean; checksum: string }>();
  for (const item of body.versions as unknown[]) {
    assert.ok(isRecord(item), text);
    out.set(String(item.version), {
      source: item.source === null ? null : String(item.source),
      stored: item.stored as boolean,
      checksum: String(item.checksum),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

describe('serve --proxy: pull-through from the upstream', () => {
  before(async () => {
    fixture = await buildFixture();
    upstream = await FakeUpstream.start({ fixture });
    scratch = await tempDir('mr-pull-through-');
    pristine = await pristineRegistry(SOURCE, upstream.url, path.join(scratch.path, 'pristine'));
  });

  beforeEach(() => {
    upstream.releaseStalls();
    upstream.faults.clear();
    upstream.gitFault = undefined;
    upstream.latencyMs = 0;
    upstream.stallMs = 1500;
    upstream.up();
    upstream.clearRecords();
  });

  after(async () => {
    await Promise.allSettled([...running].map((server) => server.stop()));
    running.clear();
    upstream?.releaseStalls();
    await Promise.allSettled([upstream?.close(), fixture?.cleanup(), scratch?.remove()]);
  });

  describe('nothing mirrored first', () => {
    let root: string;
    let server: RunningServer;

    before(async () => {
      root = await newRegistry();
      assert.deepEqual(await storedVersions(root), [], 'precondition: nothing stored');
      server = await startProxy(root);
    });

    after(async () => {
      if (server) await stopServer(server);
    });

    test('moon resolves and installs moonbitlang/x and a module with dependencies; a second install asks upstream for nothing', async () => {
      const h = await health(server.url);
      assert.equal(h.mode, 'proxy');
      assert.equal(sourceReport(h).state, 'ok');

      const home = newMoonHome();
      assert.equal((await update(server.url, home)).action, 'clone');
      const index = await readIndex(home);
      // Every upstream version is listed, with the upstream's checksum, although none is stored.
      for (const [module, versions] of fixture.modules) {
        for (const [version, info] of versions) {
          assert.equal(
            index.modules.get(module)?.get(version)?.checksum,
            info.checksum,
            `${module}@${version} is listed with the upstream's checksum`,
          );
        }
      }
      assert.equal(h.index.modules, fixture.modules.size);

      const xLatest = latest(index, X);
      assert.equal(xLatest, fixtureVersions(X).at(-1), 'moon add picks the upstream latest of moonbitlang/x');
      const formatterLatest = latest(index, FORMATTER) as string;
      const rootDeps = { [X]: xLatest as string, [FORMATTER]: formatterLatest };
      const expected = resolve(index, rootDeps);
      assert.equal(expected.get(X), xLatest);
      assert.ok(expected.size >= 5, `precondition: a dependency graph (${[...expected].join(', ')})`);
      assert.ok(
        [...expected.keys()].some((m) => m.startsWith('Yoorkin/')),
        'precondition: dependencies of another owner',
      );

      const installed = await install(server.url, home, rootDeps); // checksums verified by the client
      await settled(server.url);
      assert.deepEqual([...installed.keys()].sort(), [...expected.keys()].sort());
      assert.equal(upstream.archiveRequests, expected.size, 'one upstream request per archive');
      for (const [module, version] of expected) {
        assert.equal(installed.get(module)?.version, version);
        assert.equal(hits(module, version), 1, `${module}@${version} fetched once`);
        const files = await storedFiles(root, module, version);
        assert.deepEqual(
          files.map((f) => path.basename(f)),
          [`${checksumIn(fixture, module, version)}.zip`],
          `${module}@${version} is stored under its checksum`,
        );
      }
      assert.deepEqual(
        await storedVersions(root),
        [...expected].map(([m, v]) => keyOf(m, v)).sort(),
        'exactly the installed archives are stored',
      );
      await assertNoTempFiles(root);

      const info = await moduleInfo(server.url, X);
      assert.deepEqual(info.get(xLatest as string), {
        source: SOURCE,
        stored: true,
        checksum: checksumIn(fixture, X, xLatest as string),
      });
      const notFetched = fixtureVersions(X)[0] as string;
      assert.equal(info.get(notFetched)?.stored, false, `${X}@${notFetched} is listed but not stored`);
      assert.equal(info.get(notFetched)?.source, SOURCE);

      // Another machine (fresh moon home): everything comes from the store.
      upstream.clearRecords();
      const home2 = newMoonHome();
      await update(server.url, home2);
      const again = await install(server.url, home2, rootDeps);
      assert.equal(again.size, expected.size);
      for (const [module, item] of again)
        assert.ok(item.bytes.equals(installed.get(module)?.bytes as Buffer));
      assert.equal(upstream.archiveRequests, 0, 'no upstream archive request for stored archives');
    });

    test('streaming: the client gets the first bytes while the upstream still holds the rest', async () => {
      const version = fixtureVersions(REGEXP)[1] as string;
      const checksum = checksumIn(fixture, REGEXP, version);
      upstream.faults.set(keyOf(REGEXP, version), 'stall');
      upstream.stallMs = 2000;

      const response = await rawGet(archiveUrl(server.url, REGEXP, version));
      assert.equal(response.status, 200, response.body.toString('utf8'));
      assert.ok(response.complete, `complete body (${response.error ?? 'no error'})`);
      assert.equal(sha256Hex(response.body), checksum);
      assert.equal(upstream.stalls.length, 1, 'one upstream download');
      const stall = upstream.stalls[0];
      assert.ok(stall?.resumedAt !== undefined, 'the upstream sent the second half');
      assert.equal(Number(response.headers['content-length']), stall.total, 'Content-Length from the start');

      const first = response.chunks[0]?.at as number;
      assert.ok(
        first < stall.resumedAt,
        `first bytes after ${Math.round(first - stall.firstHalfAt)} ms, but the upstream resumed after ` +
          `${Math.round(stall.resumedAt - stall.firstHalfAt)} ms: the download was not streamed`,
      );
      const early = response.chunks.filter((c) => c.at < (stall.resumedAt as number));
      const earlyBytes = early.reduce((sum, c) => sum + c.bytes, 0);
      assert.ok(earlyBytes > 0);
      assert.ok(
        earlyBytes < stall.sentFirst,
        `before verification the client got ${earlyBytes} bytes of the ${stall.sentFirst} received: ` +
          'the last one must wait for the checksum',
      );
      assert.equal(hits(REGEXP, version), 1);
      await settled(server.url);
      assert.equal((await storedFiles(root, REGEXP, version)).length, 1, 'stored after streaming');
    });

    test('100 concurrent clients of one uncached archive: one upstream download, 100 verified bodies', async () => {
      const version = fixtureVersions(REGEXP)[2] as string;
      const checksum = checksumIn(fixture, REGEXP, version);
      upstream.faults.set(keyOf(REGEXP, version), 'stall');
      upstream.stallMs = 60_000; // released below, once every client is in

      const clients = 100;
      let receiving = 0;
      const url = archiveUrl(server.url, REGEXP, version);
      const responses = Array.from({ length: clients }, () =>
        rawGet(url, () => {
          receiving++;
        }),
      );
      try {
        // Every client has bytes while the upstream is still held: all of them joined one download.
        await waitFor(
          `${clients} clients receiving (now ${receiving})`,
          () => receiving === clients,
          30_000,
          50,
        );
        const h = await health(server.url);
        assert.equal(h.fetching, 1, 'one pull-through download in progress');
      } finally {
        upstream.releaseStalls();
      }
      const results = await Promise.all(responses);
      assert.equal(upstream.archiveRequests, 1, 'exactly one upstream archive request');
      assert.equal(hits(REGEXP, version), 1);
      for (const [i, result] of results.entries()) {
        assert.equal(result.status, 200, `client ${i}`);
        assert.ok(result.complete, `client ${i}: complete body (${result.error ?? 'no error'})`);
        assert.equal(sha256Hex(result.body), checksum, `client ${i}: bytes match the checksum`);
      }
      await settled(server.url);
      assert.equal((await storedFiles(root, REGEXP, version)).length, 1);
      await assertNoTempFiles(root);
    });

    test('the same registry served without --proxy lists only stored versions', async () => {
      await stopServer(server);
      const stored = await storedVersions(root);
      const fetchedByProxy = keyOf(X, fixtureVersions(X).at(-1) as string);
      assert.ok(stored.includes(fetchedByProxy), 'precondition: the proxy stored archives');
      await runCliOk(['config', 'server.admin_token', ADMIN_TOKEN], { cwd: root });
      server = await serve(root, []);
      upstream.clearRecords();

      const h = await health(server.url);
      assert.equal(h.mode, 'mirror');
      const check = async (label: string) => {
        const home = newMoonHome();
        await update(server.url, home);
        const index = await readIndex(home).catch(() => ({ modules: new Map(), skippedLines: 0 }));
        const listed = listedKeys(index);
        for (const key of listed)
          assert.ok(stored.includes(key), `${label}: ${key} is listed but not stored`);
        for (const [module, versions] of index.modules) {
          for (const [version, entry] of versions) {
            await download(server.url, module, version, entry.checksum as string);
          }
        }
        return listed;
      };
      await check('before any sync');

      // A sync in mirror mode refreshes the lines of stored versions only: the proxy's archives
      // become listed, the thousands of other upstream versions do not.
      const sync = await postSync(server.url, `Bearer ${ADMIN_TOKEN}`);
      assert.equal(sync.status, 200, JSON.stringify(sync.body));
      const report = sync.body as SyncReport;
      assert.equal(report.index?.versions, stored.length, JSON.stringify(report));
      assert.deepEqual(await check('after a sync'), stored, 'exactly the stored versions are listed');

      const unstored = fixtureVersions(X).find((v) => !stored.includes(keyOf(X, v))) as string;
      const miss = await rawGet(archiveUrl(server.url, X, unstored));
      assert.equal(miss.status, 404, `${X}@${unstored} is not served in mirror mode`);
      assert.equal(upstream.archiveRequests, 0, 'mirror mode never asks the upstream for archives');
      await assertNoTempFiles(root);
    });
  });

  describe('upstream down', () => {
    test('stored modules still install, misses fail fast and name the source, the breaker opens; recovery after it is back', async () => {
      const root = await newRegistry({ 'server.admin_token': '${PT_E2E_ADMIN_TOKEN}' });
      const server = await startProxy(root, { env: { PT_E2E_ADMIN_TOKEN: ADMIN_TOKEN } });
      const regexpLatest = fixtureVersions(REGEXP).at(-1) as string;
      const rootDeps = { [REGEXP]: regexpLatest };
      const home = newMoonHome();
      await update(server.url, home);
      const before = await install(server.url, home, rootDeps);
      assert.equal(hits(REGEXP, regexpLatest), 1);
      await settled(server.url);

      await upstream.close();
      try {
        // Already fetched: a new machine installs it with the upstream gone.
        const home2 = newMoonHome();
        await update(server.url, home2);
        const again = await install(server.url, home2, rootDeps);
        assert.ok(again.get(REGEXP)?.bytes.equals(before.get(REGEXP)?.bytes as Buffer));

        // Not fetched: a quick, clear failure.
        const xVersions = fixtureVersions(X);
        const miss = await rawGet(archiveUrl(server.url, X, xVersions.at(-1) as string));
        assert.ok([502, 504].includes(miss.status), `502/504, got ${miss.status}`);
        assert.ok(miss.ms < 5000, `failed in ${Math.round(miss.ms)} ms, expected well under 10 s`);
        assert.match(jsonError(miss), new RegExp(SOURCE), 'the error names the source');
        await assert.rejects(
          download(
            server.url,
            X,
            xVersions.at(-1) as string,
            checksumIn(fixture, X, xVersions.at(-1) as string),
          ),
          /HTTP 50[24]/,
        );

        // /health stays 200 and says which source fails.
        let h = await health(server.url);
        let report = sourceReport(h);
        assert.equal(report.state, 'failing', JSON.stringify(report));
        assert.ok(report.failing_since && report.last_error, JSON.stringify(report));

        // Misses until the breaker opens (3 failures in a row; retries count), then immediate 502s.
        let probes = 0;
        while (sourceReport(await health(server.url)).circuit !== 'open') {
          assert.ok(probes < 5, `the circuit never opened: ${JSON.stringify(sourceReport(h))}`);
          await rawGet(archiveUrl(server.url, X, xVersions.at(-2 - probes) as string));
          probes++;
        }
        h = await health(server.url);
        report = sourceReport(h);
        assert.ok(report.retry_at, `retry_at while open: ${JSON.stringify(report)}`);
        for (const version of xVersions.slice(0, 3)) {
          const fast = await rawGet(archiveUrl(server.url, X, version));
          assert.equal(fast.status, 502, fast.body.toString('utf8'));
          assert.ok(fast.ms < 2000, `an open circuit answers at once, took ${Math.round(fast.ms)} ms`);
          assert.match(String(fast.headers['retry-after']), /^\d+$/, 'Retry-After while the circuit is open');
          const seconds = Number(fast.headers['retry-after']);
          assert.ok(seconds >= 1 && seconds <= 10, `Retry-After ${seconds}`);
          assert.match(jsonError(fast), new RegExp(SOURCE));
        }
      } finally {
        await upstream.restart();
      }

      // Back: an operator's sync asks the source at once (open circuit or not) and closes the circuit.
      const sync = await postSync(server.url, `Bearer ${ADMIN_TOKEN}`);
      assert.equal(sync.status, 200, JSON.stringify(sync.body));
      const syncReport = sync.body as SyncReport;
      assert.deepEqual(
        syncReport.sources.map((s) => [s.name, s.result]),
        [[SOURCE, 'fetched']],
      );
      const report = sourceReport(await health(server.url));
      assert.equal(report.state, 'ok', JSON.stringify(report));
      assert.equal(report.circuit, 'closed', JSON.stringify(report));
      const xLatest = fixtureVersions(X).at(-1) as string;
      await download(server.url, X, xLatest, checksumIn(fixture, X, xLatest));
      await settled(server.url);
      assert.equal((await storedFiles(root, X, xLatest)).length, 1);
      await stopServer(server);
    });
  });

  describe('index sync', () => {
    test('auto_sync every 1s: a version the upstream publishes reaches the client; no commit when nothing changed', async () => {
      const root = await newRegistry({
        'server.upstream_fallback': 'true', // pull-through from registry.toml, without --proxy
        'mirror.auto_sync': 'true',
        'mirror.sync_interval': '1s',
      });
      const server = await startProxy(root, { args: [] });
      let h = await health(server.url);
      assert.equal(h.mode, 'proxy');
      assert.equal(h.sync?.auto, true);
      assert.equal(h.sync?.interval_seconds, 1);

      const home = newMoonHome();
      await update(server.url, home);
      assert.equal((await readIndex(home)).modules.has(NEW_MODULE), false, 'precondition');

      const regexpLatest = fixtureVersions(REGEXP).at(-1) as string;
      const published = await fixture.addVersion(NEW_MODULE, '0.1.0', { [REGEXP]: regexpLatest });
      const entry = await waitFor(
        `${NEW_MODULE}@0.1.0 in the client's index`,
        async () => {
          await update(server.url, home);
          return (await readIndex(home)).modules.get(NEW_MODULE)?.get('0.1.0');
        },
        20_000,
        300,
      );
      assert.equal(entry.checksum, published.checksum);
      const installed = await install(server.url, home, { [NEW_MODULE]: '0.1.0' });
      assert.deepEqual([...installed.keys()].sort(), [NEW_MODULE, REGEXP].sort());

      // Later syncs find nothing new: no new commit. The sync that published may still be
      // finishing, so the second sync after this point is surely one that started later.
      h = await health(server.url);
      const commit = h.index.commit;
      const nextRun = (previous: string | undefined) =>
        waitFor('the next sync', async () => {
          const now = await health(server.url);
          const run = now.sync?.last_run;
          return run && run.started !== previous ? now : undefined;
        });
      const next = await nextRun(h.sync?.last_run?.started);
      const quiet = await nextRun(next.sync?.last_run?.started);
      assert.equal(quiet.sync?.last_run?.index?.changed, false, JSON.stringify(quiet.sync));
      assert.equal(quiet.sync?.last_run?.index?.commit, commit);
      assert.equal(quiet.index.commit, commit, 'the served index did not move');

      // No admin token configured: the admin endpoint does not exist.
      assert.equal((await postSync(server.url, `Bearer ${ADMIN_TOKEN}`)).status, 404);
      await stopServer(server);
    });

    test('POST /admin/sync with the token publishes a new upstream version at once; 401 without it', async () => {
      const root = await newRegistry({ 'server.admin_token': ADMIN_TOKEN });
      const server = await startProxy(root);
      const h = await health(server.url);
      assert.equal(h.sync?.auto, false);
      const versionsBefore = h.sync?.last_run?.index?.versions as number;

      const home = newMoonHome();
      await update(server.url, home);
      const published = await fixture.addVersion(NEW_MODULE, '0.2.0');
      await update(server.url, home);
      assert.equal(
        (await readIndex(home)).modules.get(NEW_MODULE)?.has('0.2.0') ?? false,
        false,
        'no sync yet, so not listed yet',
      );

      for (const authorization of [undefined, 'Bearer wrong-token', `Basic ${ADMIN_TOKEN}`, ADMIN_TOKEN]) {
        const refused = await postSync(server.url, authorization);
        assert.equal(refused.status, 401, `Authorization: ${authorization}`);
        assert.ok(isRecord(refused.body) && typeof refused.body.error === 'string');
      }

      const sync = await postSync(server.url, `Bearer ${ADMIN_TOKEN}`);
      assert.equal(sync.status, 200, JSON.stringify(sync.body));
      const report = sync.body as SyncReport;
      assert.equal(report.trigger, 'admin');
      assert.ok(typeof report.started === 'string' && typeof report.seconds === 'number');
      assert.deepEqual(report.sources, [
        { name: SOURCE, result: 'fetched', commit: await fixture.headCommit() },
      ]);
      assert.equal(report.index?.changed, true, JSON.stringify(report));
      assert.equal(report.index?.versions, versionsBefore + 1);

      await update(server.url, home);
      const entry = (await readIndex(home)).modules.get(NEW_MODULE)?.get('0.2.0');
      assert.equal(entry?.checksum, published.checksum, 'listed right after the sync');
      await download(server.url, NEW_MODULE, '0.2.0', published.checksum);

      const idle = await postSync(server.url, `Bearer ${ADMIN_TOKEN}`);
      assert.equal(idle.status, 200);
      assert.equal((idle.body as SyncReport).index?.changed, false, 'nothing new, no commit');
      assert.equal((idle.body as SyncReport).index?.commit, report.index?.commit);
      await stopServer(server);
    });
  });

  describe('a misbehaving upstream archive', () => {
    let root: string;
    let server: RunningServer;

    before(async () => {
      root = await newRegistry({ 'server.negative_cache_ttl': '4s' }); // mirror.retries: default 3
      server = await startProxy(root);
    });

    after(async () => {
      if (server) await stopServer(server);
    });

    async function assertNotServedNorStored(version: string, fault: string): Promise<RawResponse> {
      const response = await rawGet(archiveUrl(server.url, REGEXP, version));
      await settled(server.url);
      assert.ok(
        !(response.status === 200 && response.complete),
        `${fault}: a complete 200 was served (${response.body.length} bytes)`,
      );
      if (response.status !== 200) {
        assert.equal(response.status, 502, response.body.toString('utf8'));
        assert.match(jsonError(response), new RegExp(SOURCE));
      }
      assert.notEqual(sha256Hex(response.body), checksumIn(fixture, REGEXP, version));
      assert.deepEqual(await storedFiles(root, REGEXP, version), [], `${fault}: nothing stored`);
      await assertNoTempFiles(root);
      assert.equal((await moduleInfo(server.url, REGEXP)).get(version)?.stored, false);
      return response;
    }

    test('wrong bytes are never served complete nor stored; once fixed, the same request works', async () => {
      const version = fixtureVersions(REGEXP)[3] as string;
      const checksum = checksumIn(fixture, REGEXP, version);
      upstream.faults.set(keyOf(REGEXP, version), 'wrongBytes');
      await assertNotServedNorStored(version, 'wrongBytes');
      await assert.rejects(download(server.url, REGEXP, version, checksum));
      await settled(server.url);
      await assertNoTempFiles(root);

      upstream.faults.delete(keyOf(REGEXP, version));
      const bytes = await download(server.url, REGEXP, version, checksum);
      assert.equal(sha256Hex(bytes), checksum);
      await settled(server.url);
      assert.deepEqual(
        (await storedFiles(root, REGEXP, version)).map((f) => path.basename(f)),
        [`${checksum}.zip`],
      );
    });

    test('a truncated body is retried, never served complete nor stored; once fixed, the same request works', async () => {
      const version = fixtureVersions(REGEXP)[4] as string;
      const checksum = checksumIn(fixture, REGEXP, version);
      upstream.faults.set(keyOf(REGEXP, version), 'truncate');
      await assertNotServedNorStored(version, 'truncate');
      assert.equal(hits(REGEXP, version), 4, 'asked once, retried 3 times (mirror.retries default)');

      // One broken archive does not close the source: fixed, the same request works at once.
      upstream.faults.delete(keyOf(REGEXP, version));
      const bytes = await download(server.url, REGEXP, version, checksum);
      assert.equal(sha256Hex(bytes), checksum);
      await settled(server.url);
      assert.equal((await storedFiles(root, REGEXP, version)).length, 1);
      await assertNoTempFiles(root);
    });

    test('negative cache: an upstream 404 is asked once within the TTL, again after it', async () => {
      const version = fixtureVersions(REGEXP)[5] as string;
      const checksum = checksumIn(fixture, REGEXP, version);
      upstream.faults.set(keyOf(REGEXP, version), 'notFound');
      for (let i = 0; i < 5; i++) {
        const response = await rawGet(archiveUrl(server.url, REGEXP, version));
        assert.equal(response.status, 502, `request ${i}: ${response.body.toString('utf8')}`);
        assert.match(jsonError(response), new RegExp(SOURCE));
      }
      await assert.rejects(download(server.url, REGEXP, version, checksum), /HTTP 502/);
      assert.equal(hits(REGEXP, version), 1, 'the upstream was asked once');
      assert.deepEqual(await storedFiles(root, REGEXP, version), []);

      // Fixed upstream: answered from the cache until the TTL (4 s) is over, then fetched.
      upstream.faults.delete(keyOf(REGEXP, version));
      await waitFor(
        'the negative cache entry to expire',
        async () => (await rawGet(archiveUrl(server.url, REGEXP, version))).status === 200,
        20_000,
        250,
      );
      assert.equal(hits(REGEXP, version), 2, 'asked again only once the entry expired');
      await settled(server.url);
      assert.equal((await storedFiles(root, REGEXP, version)).length, 1);
    });
  });
});
