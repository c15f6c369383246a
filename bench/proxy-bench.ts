/**
 * Pull-through benchmark: what `serve --proxy` adds to an archive request on a miss, and how
 * many stored archives it serves per second next to a plain static file server.
 *
 * Setup. The upstream is the test FakeUpstream in this process, serving the full fixture (the
 * real mooncakes.io index, 887 modules, ~6.5k small synthetic archives) with no added latency.
 * A fresh registry has that upstream as its only enabled source and nothing stored; `serve
 * --proxy` runs as a child process (its per-request pino log goes to a file) and the benchmark
 * waits for its start-up index sync. The archives used are drawn at random (fixed seed) from
 * the versions the proxy lists with the fixture's checksum and reports as not stored.
 *
 * 1. Cold-miss latency. For each of BENCH_COLD_ARCHIVES distinct archives, one request straight
 *    to the upstream and one through the proxy (a miss: the proxy fetches it from the upstream,
 *    checks length and checksum, streams it to us and stores it), one at a time, the order
 *    alternating per archive so drift and the after-effects of one request (the proxy's fsync
 *    and rename finish after its response) fall on both sides equally. Both use a keep-alive
 *    connection from this process, as the proxy keeps its own upstream connections alive, and
 *    a few untimed pairs go first to open connections and warm up the JIT. The time is from
 *    sending the request to the last body byte; bodies are checked against the checksum after
 *    the clock stops. The upstream's own work (and this process's client work) is in both
 *    numbers, so the per-archive difference proxied - direct is what the proxy adds: its
 *    request handling, index lookup, store miss, upstream request, hashing, temp file and the
 *    extra loopback hop. With 0 ms upstream latency that is the proxy's own overhead, not the
 *    network's. The upstream's request counter must show exactly one proxied fetch per archive.
 *
 * 2. Warm throughput. More archives are pulled through the proxy (BENCH_FILL_CONCURRENCY at a
 *    time) until BENCH_WARM_ARCHIVES are stored; the stored files are checked against their
 *    checksums. The proxy is then restarted, so it serves what is on disk rather than anything
 *    the cold pass left in memory, and a plain `node:http` static file server
 *    (bench/static-file-server.ts: open, fstat, stream; no index, no log) is started in its own
 *    child process on the same data/packages folder. Every warm URL is fetched once from each
 *    and checked (bytes and checksum), which also puts the files in the page cache for both.
 *    Then autocannon, in this process, keeps BENCH_CONNECTIONS keep-alive connections busy for
 *    BENCH_WARM_SECONDS per measurement after BENCH_WARMUP_SECONDS of untimed load; each
 *    connection cycles through its own share of the URL list, so together they keep every file
 *    in use. The two servers are measured BENCH_ROUNDS times in ABBA order (registry, static,
 *    static, registry, ...) so drift affects both alike. req/s is the mean of autocannon's
 *    one-second samples (its `duration` also counts its own set-up), over all rounds; p50 is
 *    the mean of the rounds', p99 the worst round's. The upstream must see no archive request
 *    during this phase.
 *
 *    Both servers share a 2-core machine with the load generator, so absolute numbers depend on
 *    the machine and on whatever else runs; the ratio, measured minutes apart in one run, is the
 *    figure of merit. Each measurement also reports the CPU the server process (all threads)
 *    and this process used per second, from /proc: a server near one core on its main thread
 *    plus its libuv threadpool is the bottleneck, a load generator near one core would be.
 *
 * Env: BENCH_COLD_ARCHIVES (250), BENCH_WARM_ARCHIVES (4000), BENCH_CONNECTIONS (64),
 * BENCH_WARM_SECONDS (10), BENCH_WARMUP_SECONDS (2), BENCH_ROUNDS (2), BENCH_FILL_CONCURRENCY
 * (16), BENCH_SEED (1); BENCH_PROFILE_DIR (when set, each server start runs with --cpu-prof and
 * writes its profiles into its own folder there: serve-cold, serve-warm, static); BENCH_KEEP
 * (when set, the scratch folder is kept, with the registry and the servers' logs).
 * Exits non-zero only on functional failures (errors, wrong bytes, non-2xx, unexpected upstream
 * requests); missed targets print `target missed` lines.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import autocannon from 'autocannon';
import { z } from 'zod';
import { FakeUpstream } from '../test/support/fake-upstream.js';
import { buildFixture, type Fixture, repoRoot } from '../test/support/fixture.js';
import { seededRandom } from '../test/support/random.js';
import { BenchFailure, CLI_BIN, envInteger, log, printTable, type RunResult, run } from './bench-support.js';

const STATIC_SERVER = path.join(repoRoot, 'bench', 'static-file-server.ts');
const TARGET_OVERHEAD_MS = 10;
const TARGET_THROUGHPUT_RATIO = 0.5;
/** Untimed direct/proxied pairs before the cold measurement (archives not reused later). */
const COLD_WARMUP_PAIRS = 20;
const REQUEST_TIMEOUT_MS = 30_000;
const SYNC_TIMEOUT_MS = 180_000;

interface Settings {
  coldArchives: number;
  warmArchives: number;
  connections: number;
  warmSeconds: number;
  warmupSeconds: number;
  rounds: number;
  fillConcurrency: number;
  seed: number;
  profileDir: string | undefined;
  keep: boolean;
}

function readSettings(): Settings {
  const coldArchives = envInteger('BENCH_COLD_ARCHIVES', 250, 1);
  const warmArchives = envInteger('BENCH_WARM_ARCHIVES', 4000, 1);
  return {
    coldArchives,
    // The warm set includes the archives the cold pass stored.
    warmArchives: Math.max(warmArchives, coldArchives + COLD_WARMUP_PAIRS),
    connections: envInteger('BENCH_CONNECTIONS', 64, 1),
    warmSeconds: envInteger('BENCH_WARM_SECONDS', 10, 1),
    warmupSeconds: envInteger('BENCH_WARMUP_SECONDS', 2, 0),
    rounds: envInteger('BENCH_ROUNDS', 2, 1),
    fillConcurrency: envInteger('BENCH_FILL_CONCURRENCY', 16, 1),
    seed: envInteger('BENCH_SEED', 1, 0),
    profileDir: process.env.BENCH_PROFILE_DIR ? path.resolve(process.env.BENCH_PROFILE_DIR) : undefined,
    keep: Boolean(process.env.BENCH_KEEP),
  };
}

// ---------------------------------------------------------------------------------------------
// Child processes

async function cliOk(cwd: string, args: string[]): Promise<RunResult> {
  const result = await run(process.execPath, [CLI_BIN, ...args], cwd);
  if (result.code !== 0) {
    throw new BenchFailure(
      `moonbit-registry ${args.join(' ')} exited with ${result.code}:\n${result.stderr}`,
    );
  }
  return result;
}

interface ServerChild {
  name: string;
  url: string;
  child: ChildProcess;
  /** The last lines the child wrote on its piped stream, for error messages. */
  tail(): string;
  stop(): Promise<void>;
}

interface ServerSpawn {
  name: string;
  args: string[];
  cwd: string;
  /** Where the child's stdout goes when `urlFrom` is 'stderr' (the registry's request log). */
  logFile?: string;
  /** The stream on which the child announces its URL; that stream is piped, the other not. */
  urlFrom: 'stdout' | 'stderr';
  profileDir: string | undefined;
}

/**
 * Starts a server child and resolves with its URL. Only the announcing stream is piped (and
 * drained, keeping a short tail); the registry's stdout, one log line per request, goes to a
 * file so a full pipe can never block it.
 */
function startServer(spec: ServerSpawn): Promise<ServerChild> {
  // One folder per server start, with node's default names: a child with worker threads (tsx's
  // loader hooks in the static server) writes one profile per thread.
  const profile = spec.profileDir
    ? ['--cpu-prof', `--cpu-prof-dir=${path.join(spec.profileDir, spec.name)}`]
    : [];
  const logFd = spec.logFile ? openSync(spec.logFile, 'a') : undefined;
  const quiet = logFd ?? 'ignore';
  const child = spawn(process.execPath, [...profile, ...spec.args], {
    cwd: spec.cwd,
    stdio: ['ignore', spec.urlFrom === 'stdout' ? 'pipe' : quiet, spec.urlFrom === 'stderr' ? 'pipe' : quiet],
  });
  if (logFd !== undefined) closeSync(logFd);
  const stream = spec.urlFrom === 'stdout' ? child.stdout : child.stderr;
  let text = '';
  const tail = () => text.split('\n').slice(-20).join('\n');
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM'); // a clean exit, so a --cpu-prof profile gets written
    const killed = await Promise.race([exited.then(() => false), delay(15_000).then(() => true)]);
    if (killed) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new BenchFailure(`${spec.name} did not start:\n${tail()}`));
    }, 30_000);
    let announced = false;
    stream?.on('data', (chunk: Buffer) => {
      text = (text + chunk.toString('utf8')).slice(-8000);
      const match = /(http:\/\/127\.0\.0\.1:\d+)/.exec(text);
      if (!announced && match?.[1]) {
        announced = true;
        clearTimeout(timer);
        resolve({ name: spec.name, url: match[1], child, tail, stop });
      }
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (!announced)
        reject(new BenchFailure(`${spec.name} exited (${code ?? signal}) before listening:\n${tail()}`));
    });
  });
}

/** Any server child that dies during a measurement is a functional failure. */
function assertAlive(server: ServerChild): void {
  if (server.child.exitCode !== null || server.child.signalCode !== null) {
    throw new BenchFailure(`${server.name} exited during the benchmark:\n${server.tail()}`);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP client

interface Fetched {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  ms: number;
}

/** One GET; `ms` runs from sending the request to the last body byte. */
function get(url: string, agent: http.Agent): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.get(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      let ended = false;
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        ended = true;
        const ms = performance.now() - started;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms });
      });
      res.on('error', reject);
      res.on('close', () => {
        if (!ended) reject(new BenchFailure(`GET ${url}: the connection closed before the body ended`));
      });
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new BenchFailure(`GET ${url}: no answer in time`)));
    req.on('error', reject);
  });
}

function keepAliveAgent(maxSockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets });
}

async function getJson(url: string, agent: http.Agent): Promise<unknown> {
  const got = await get(url, agent);
  if (got.status !== 200) throw new BenchFailure(`GET ${url} answered ${got.status}: ${got.body.toString()}`);
  return JSON.parse(got.body.toString('utf8'));
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** 200, a body as long as its Content-Length, with the checksum the index lists. */
function checkArchive(what: string, got: Fetched, archive: Archive): void {
  if (got.status !== 200) {
    throw new BenchFailure(
      `${what} ${archive.label}: HTTP ${got.status}: ${got.body.toString().slice(0, 300)}`,
    );
  }
  const length = got.headers['content-length'];
  if (length !== undefined && Number(length) !== got.body.length) {
    throw new BenchFailure(`${what} ${archive.label}: ${got.body.length} bytes, Content-Length ${length}`);
  }
  if (got.body.length !== archive.size || sha256(got.body) !== archive.checksum) {
    throw new BenchFailure(
      `${what} ${archive.label}: wrong bytes (${got.body.length}, expected ${archive.size})`,
    );
  }
}

/** Runs `task` on every item with at most `limit` in flight; the first failure stops the rest. */
async function forEachLimit<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await task(item);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

// ---------------------------------------------------------------------------------------------
// Statistics

/** Nearest-rank percentile of unsorted values. */
function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1] ?? Number.NaN;
}

interface Spread {
  p50: number;
  p90: number;
}

function spread(values: number[]): Spread {
  return { p50: percentile(values, 0.5), p90: percentile(values, 0.9) };
}

/** Deterministic shuffle (mulberry32), so runs with the same seed use the same archives. */
function shuffled<T>(items: T[], seed: number): T[] {
  const random = seededRandom(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Registry and archives

interface Archive {
  module: string;
  version: string;
  checksum: string;
  size: number;
  /** `/user/<module%2Fversion>.zip`, as `moon` asks for it. */
  urlPath: string;
  /** The stored file, relative to data/packages. */
  storePath: string;
  /** FakeUpstream's archiveHits key. */
  label: string;
}

/** A fresh registry whose only enabled source is the fake upstream; nothing is stored. */
async function createRegistry(scratch: string, upstreamUrl: string): Promise<string> {
  const dir = path.join(scratch, 'registry');
  await cliOk(scratch, ['init', dir, '--name', 'bench']);
  const steps = [
    ['source', 'add', 'fake', '--url', upstreamUrl, '--type', 'moonbit-registry'],
    ['source', 'default', 'fake'],
    // The preset mooncakes.io source is unreachable here; disabled, it costs nothing.
    ['source', 'disable', 'mooncakes'],
  ];
  for (const args of steps) await cliOk(dir, args);
  return dir;
}

const HealthSchema = z.object({
  index: z.object({ commit: z.string().nullable(), modules: z.number() }),
  sync: z.object({ last_run: z.unknown(), last_error: z.string().nullable() }),
});

/** Polls /health until the start-up index sync has finished. */
async function waitForSync(server: ServerChild, agent: http.Agent): Promise<number> {
  const deadline = performance.now() + SYNC_TIMEOUT_MS;
  for (;;) {
    assertAlive(server);
    const health = HealthSchema.parse(await getJson(`${server.url}/health`, agent));
    if (health.sync.last_error) throw new BenchFailure(`index sync failed: ${health.sync.last_error}`);
    if (health.sync.last_run !== null && health.sync.last_run !== undefined) return health.index.modules;
    if (performance.now() > deadline)
      throw new BenchFailure('the start-up index sync did not finish in time');
    await delay(100);
  }
}

const FetchingSchema = z.object({ fetching: z.number() });

/** Waits until the proxy has no download in progress (stored, or given up). */
async function waitForIdle(server: ServerChild, agent: http.Agent): Promise<void> {
  const deadline = performance.now() + REQUEST_TIMEOUT_MS;
  while (FetchingSchema.parse(await getJson(`${server.url}/health`, agent)).fetching > 0) {
    if (performance.now() > deadline) throw new BenchFailure(`${server.name}: downloads still in progress`);
    await delay(50);
  }
}

const ModuleSchema = z.object({
  versions: z.array(z.object({ version: z.string(), checksum: z.string(), stored: z.boolean() })),
});

/**
 * The archives the proxy lists with the fixture's checksum and does not have yet, from its own
 * `GET /user/<module>`, so every chosen URL is a real miss that the upstream can satisfy.
 */
async function unstoredArchives(fixture: Fixture, proxyUrl: string, agent: http.Agent): Promise<Archive[]> {
  const archives: Archive[] = [];
  await forEachLimit([...fixture.modules], 8, async ([module, versions]) => {
    const encoded = module.split('/').map(encodeURIComponent).join('/');
    const listed = ModuleSchema.parse(await getJson(`${proxyUrl}/user/${encoded}`, agent));
    for (const entry of listed.versions) {
      const info = versions.get(entry.version);
      if (!info || entry.stored || info.checksum !== entry.checksum.toLowerCase()) continue;
      const key = new URLSearchParams({ k: `${module}/${entry.version}` }).toString().slice(2);
      archives.push({
        module,
        version: entry.version,
        checksum: info.checksum,
        size: info.size,
        urlPath: `/user/${key}.zip`,
        storePath: path.join(...module.split('/'), entry.version, `${info.checksum}.zip`),
        label: `${module}@${entry.version}`,
      });
    }
  });
  // forEachLimit finishes in any order; sort before the seeded shuffle.
  return archives.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------
// 1. Cold misses

interface ColdResult {
  proxied: Spread;
  direct: Spread;
  overhead: Spread;
  archives: number;
  seconds: number;
}

async function coldPass(
  archives: Archive[],
  warmup: Archive[],
  upstream: FakeUpstream,
  proxy: ServerChild,
): Promise<ColdResult> {
  const toUpstream = keepAliveAgent(1);
  const toProxy = keepAliveAgent(1);
  const pair = async (archive: Archive, directFirst: boolean) => {
    const direct = () => get(`${upstream.url}${archive.urlPath}`, toUpstream);
    const proxied = () => get(`${proxy.url}${archive.urlPath}`, toProxy);
    let d: Fetched;
    let p: Fetched;
    if (directFirst) {
      d = await direct();
      p = await proxied();
    } else {
      p = await proxied();
      d = await direct();
    }
    checkArchive('direct', d, archive);
    checkArchive('proxied', p, archive);
    return { direct: d.ms, proxied: p.ms };
  };
  try {
    for (const [i, archive] of warmup.entries()) await pair(archive, i % 2 === 0);
    const direct: number[] = [];
    const proxied: number[] = [];
    const overhead: number[] = [];
    const started = performance.now();
    for (const [i, archive] of archives.entries()) {
      const timing = await pair(archive, i % 2 === 0);
      direct.push(timing.direct);
      proxied.push(timing.proxied);
      overhead.push(timing.proxied - timing.direct);
    }
    const seconds = (performance.now() - started) / 1000;
    assertAlive(proxy);
    // One direct request and exactly one proxied fetch per archive: each proxied one was a miss.
    for (const archive of [...warmup, ...archives]) {
      const hits = upstream.archiveHits.get(archive.label) ?? 0;
      if (hits !== 2)
        throw new BenchFailure(`${archive.label}: the upstream saw ${hits} requests, expected 2`);
    }
    return {
      proxied: spread(proxied),
      direct: spread(direct),
      overhead: spread(overhead),
      archives: archives.length,
      seconds,
    };
  } finally {
    toUpstream.destroy();
    toProxy.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Warm throughput

interface FillResult {
  archives: number;
  seconds: number;
}

/** Pulls archives through the proxy, several at a time, until they are all stored. */
async function fillPass(
  archives: Archive[],
  concurrency: number,
  upstream: FakeUpstream,
  proxy: ServerChild,
): Promise<FillResult> {
  const agent = keepAliveAgent(concurrency);
  const before = upstream.archiveRequests;
  const started = performance.now();
  try {
    await forEachLimit(archives, concurrency, async (archive) => {
      checkArchive('fill', await get(`${proxy.url}${archive.urlPath}`, agent), archive);
    });
  } finally {
    agent.destroy();
  }
  const seconds = (performance.now() - started) / 1000;
  assertAlive(proxy);
  const requests = upstream.archiveRequests - before;
  if (requests !== archives.length) {
    throw new BenchFailure(`fill: ${requests} upstream archive requests for ${archives.length} misses`);
  }
  return { archives: archives.length, seconds };
}

/** Every archive is in data/packages under its checksum, with exactly the right bytes. */
async function checkStored(archives: Archive[], packagesDir: string): Promise<void> {
  await forEachLimit(archives, 16, async (archive) => {
    const bytes = await readFile(path.join(packagesDir, archive.storePath)).catch(() => undefined);
    if (!bytes)
      throw new BenchFailure(`${archive.label} was served but is not stored at ${archive.storePath}`);
    if (sha256(bytes) !== archive.checksum)
      throw new BenchFailure(`${archive.label}: stored bytes are wrong`);
  });
}

/** A server gives every warm URL (paths[i] for archives[i]) with the right bytes. */
async function checkServed(server: ServerChild, archives: Archive[], paths: string[]): Promise<void> {
  const agent = keepAliveAgent(16);
  try {
    await forEachLimit([...archives.keys()], 16, async (i) => {
      const archive = archives[i] as Archive;
      checkArchive(server.name, await get(`${server.url}${paths[i]}`, agent), archive);
    });
  } finally {
    agent.destroy();
  }
}

interface LoadRun {
  server: string;
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  /** Slowest and fastest one-second sample, to see a dip within a measurement. */
  minPerSecond: number;
  maxPerSecond: number;
  /** CPU time of the server process (all its threads) per second of wall time, from /proc. */
  serverCores: number | undefined;
  /** The same for this process: autocannon, the load generator. */
  loadCores: number;
  errors: number;
  timeouts: number;
  non2xx: number;
}

/**
 * autocannon for `seconds` with keep-alive connections. Each connection cycles through its own
 * share of the URL list, so together they keep every file in use; the shares are set up once
 * per connection (autocannon prebuilds each request), which keeps set-up short.
 */
async function load(
  server: ServerChild,
  paths: string[],
  connections: number,
  seconds: number,
): Promise<LoadRun> {
  let client = 0;
  const serverCpu = processCpuMs(server.child.pid);
  const ownCpu = process.cpuUsage();
  const started = performance.now();
  const result = await autocannon({
    url: server.url,
    connections,
    duration: seconds,
    pipelining: 1,
    timeout: 10,
    setupClient: (c) => {
      const index = client++;
      const from = Math.floor((index * paths.length) / connections);
      const to = Math.max(from + 1, Math.floor(((index + 1) * paths.length) / connections));
      c.setRequests(paths.slice(from, to).map((p) => ({ method: 'GET', path: p })));
    },
  });
  const wall = performance.now() - started;
  const serverCpuAfter = processCpuMs(server.child.pid);
  const own = process.cpuUsage(ownCpu);
  assertAlive(server);
  return {
    server: server.name,
    serverCores:
      serverCpu === undefined || serverCpuAfter === undefined
        ? undefined
        : (serverCpuAfter - serverCpu) / wall,
    loadCores: (own.user + own.system) / 1000 / wall,
    requests: result.requests.total,
    // The mean of the one-second samples: `result.duration` also counts autocannon's set-up.
    rps: result.requests.mean,
    p50: result.latency.p50,
    p99: result.latency.p99,
    minPerSecond: result.requests.min,
    maxPerSecond: result.requests.max,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
  };
}

/** User + system CPU milliseconds of a process so far (Linux /proc; clock ticks of 10 ms). */
function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks * 10 : undefined;
  } catch {
    return undefined;
  }
}

interface Throughput {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  runs: LoadRun[];
}

function summarize(runs: LoadRun[]): Throughput {
  const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / values.length;
  return {
    // Every measurement lasts the same time, so this is all requests over all seconds.
    rps: mean(runs.map((r) => r.rps)),
    p50: mean(runs.map((r) => r.p50)),
    p99: Math.max(...runs.map((r) => r.p99)),
    errors: runs.reduce((sum, r) => sum + r.errors + r.timeouts, 0),
    non2xx: runs.reduce((sum, r) => sum + r.non2xx, 0),
    runs,
  };
}

interface WarmResult {
  archives: number;
  registry: Throughput;
  static: Throughput;
}

async function warmPass(
  settings: Settings,
  archives: Archive[],
  registry: ServerChild,
  staticServer: ServerChild,
): Promise<WarmResult> {
  const registryPaths = archives.map((a) => a.urlPath);
  const staticPaths = archives.map(
    (a) => `/${a.storePath.split(path.sep).map(encodeURIComponent).join('/')}`,
  );
  const targets = [
    { server: registry, paths: registryPaths },
    { server: staticServer, paths: staticPaths },
  ];
  log(`checking ${archives.length} warm URLs on both servers ...`);
  // Also puts the files in the page cache for both servers alike.
  for (const { server, paths } of targets) await checkServed(server, archives, paths);
  if (settings.warmupSeconds > 0) {
    for (const { server, paths } of targets) {
      log(`warm-up: ${server.name}, ${settings.warmupSeconds} s ...`);
      const run = await load(server, paths, settings.connections, settings.warmupSeconds);
      if (run.errors + run.timeouts + run.non2xx > 0) {
        throw new BenchFailure(
          `${server.name}: ${run.errors} errors and ${run.non2xx} non-2xx answers in warm-up`,
        );
      }
    }
  }
  const runs: LoadRun[] = [];
  for (let round = 0; round < settings.rounds; round++) {
    // ABBA: registry, static, static, registry, ...
    const order = round % 2 === 0 ? targets : [...targets].reverse();
    for (const { server, paths } of order) {
      log(`round ${round + 1}/${settings.rounds}: ${server.name}, ${settings.warmSeconds} s ...`);
      const run = await load(server, paths, settings.connections, settings.warmSeconds);
      log(
        `  ${run.rps.toFixed(0)} req/s, ${run.requests} requests (1 s samples ${run.minPerSecond}..${run.maxPerSecond}), ` +
          `p50 ${run.p50} ms, p99 ${run.p99} ms, CPU cores: server ${cores(run.serverCores)}, ` +
          `load generator ${cores(run.loadCores)}, ` +
          `errors ${run.errors}, non-2xx ${run.non2xx}`,
      );
      runs.push(run);
    }
  }
  const registryResult = summarize(runs.filter((r) => r.server === registry.name));
  const staticResult = summarize(runs.filter((r) => r.server === staticServer.name));
  for (const result of [registryResult, staticResult]) {
    if (result.errors > 0 || result.non2xx > 0) {
      const name = result.runs[0]?.server ?? '?';
      throw new BenchFailure(
        `${name}: ${result.errors} errors and ${result.non2xx} non-2xx answers under load`,
      );
    }
  }
  return { archives: archives.length, registry: registryResult, static: staticResult };
}

// ---------------------------------------------------------------------------------------------
// Report

interface Report {
  settings: Settings;
  servedModules: number;
  candidates: number;
  cold: ColdResult;
  fill: FillResult;
  warm: WarmResult;
}

function cores(value: number | undefined): string {
  return value === undefined ? 'n/a' : value.toFixed(2);
}

function ms(value: number): string {
  return value.toFixed(2);
}

function report(r: Report): void {
  const { cold, warm, settings } = r;
  const ratio = warm.registry.rps / warm.static.rps;
  console.log('');
  console.log(
    `proxy: ${r.servedModules} modules served, ${r.candidates} unstored archives to draw from; upstream latency 0 ms; ${os.cpus().length} CPUs`,
  );
  console.log('');
  console.log(
    `cold misses: ${cold.archives} distinct archives, one at a time, direct and proxied alternating (${cold.seconds.toFixed(1)} s)`,
  );
  printTable([
    ['ms', 'p50', 'p90'],
    ['proxied', ms(cold.proxied.p50), ms(cold.proxied.p90)],
    ['direct', ms(cold.direct.p50), ms(cold.direct.p90)],
    ['overhead (per archive)', ms(cold.overhead.p50), ms(cold.overhead.p90)],
  ]);
  console.log('');
  console.log(
    `fill: ${r.fill.archives} more archives through the proxy, ${settings.fillConcurrency} at a time: ` +
      `${r.fill.seconds.toFixed(2)} s (${(r.fill.archives / r.fill.seconds).toFixed(0)} archives/s)`,
  );
  console.log('');
  console.log(
    `warm: ${warm.archives} stored archives, ${settings.connections} connections, ${settings.rounds} x ${settings.warmSeconds} s per server (ABBA) after ${settings.warmupSeconds} s warm-up, autocannon`,
  );
  const row = (name: string, t: Throughput) => [
    name,
    t.rps.toFixed(0),
    String(t.p50),
    String(t.p99),
    String(t.errors),
    String(t.non2xx),
    t.runs.map((run) => run.rps.toFixed(0)).join(' / '),
    t.runs.map((run) => `${cores(run.serverCores)}+${cores(run.loadCores)}`).join(' / '),
  ];
  printTable([
    ['server', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'non-2xx', 'req/s per round', 'CPU server+autocannon'],
    row('serve --proxy', warm.registry),
    row('static (node:http)', warm.static),
  ]);
  console.log('');
  const targets: Array<[ok: boolean, text: string]> = [
    [
      cold.overhead.p50 < TARGET_OVERHEAD_MS,
      `cold-miss overhead p50 ${ms(cold.overhead.p50)} ms (target < ${TARGET_OVERHEAD_MS} ms)`,
    ],
    [
      ratio >= TARGET_THROUGHPUT_RATIO,
      `warm throughput ${ratio.toFixed(2)}x the static server (target >= ${TARGET_THROUGHPUT_RATIO}x)`,
    ],
  ];
  for (const [ok, text] of targets) console.log(`${ok ? 'target met' : 'target missed'}: ${text}`);
  console.log(
    `RESULT proxy cold_p50=${ms(cold.proxied.p50)}ms cold_p90=${ms(cold.proxied.p90)}ms ` +
      `direct_p50=${ms(cold.direct.p50)}ms direct_p90=${ms(cold.direct.p90)}ms ` +
      `overhead_p50=${ms(cold.overhead.p50)}ms overhead_p90=${ms(cold.overhead.p90)}ms ` +
      `warm=${warm.registry.rps.toFixed(0)}req/s static=${warm.static.rps.toFixed(0)}req/s ratio=${ratio.toFixed(2)}x ` +
      `warm_p50=${warm.registry.p50}ms warm_p99=${warm.registry.p99}ms ` +
      `static_p50=${warm.static.p50}ms static_p99=${warm.static.p99}ms ` +
      `errors=${warm.registry.errors + warm.static.errors} non2xx=${warm.registry.non2xx + warm.static.non2xx}`,
  );
}

// ---------------------------------------------------------------------------------------------

function serveSpec(registryDir: string, scratch: string, settings: Settings, name: string): ServerSpawn {
  return {
    name,
    args: [CLI_BIN, 'serve', '--proxy', '--host', '127.0.0.1', '--port', '0'],
    cwd: registryDir,
    logFile: path.join(scratch, `${name}.log`),
    urlFrom: 'stderr',
    profileDir: settings.profileDir,
  };
}

async function bench(settings: Settings, fixture: Fixture, upstream: FakeUpstream, scratch: string) {
  const registryDir = await createRegistry(scratch, upstream.url);
  const packagesDir = path.join(registryDir, 'data', 'packages');
  if (settings.profileDir) await mkdir(settings.profileDir, { recursive: true });
  const control = keepAliveAgent(8);
  const children: ServerChild[] = [];
  try {
    log('starting serve --proxy and waiting for its start-up index sync ...');
    const cold = await startServer(serveSpec(registryDir, scratch, settings, 'serve-cold'));
    children.push(cold);
    const servedModules = await waitForSync(cold, control);
    const candidates = shuffled(await unstoredArchives(fixture, cold.url, control), settings.seed);
    if (candidates.length < settings.warmArchives) {
      throw new BenchFailure(`only ${candidates.length} unstored archives, ${settings.warmArchives} needed`);
    }
    const warmup = candidates.slice(0, COLD_WARMUP_PAIRS);
    const coldSet = candidates.slice(COLD_WARMUP_PAIRS, COLD_WARMUP_PAIRS + settings.coldArchives);
    const fillSet = candidates.slice(COLD_WARMUP_PAIRS + settings.coldArchives, settings.warmArchives);
    const warmSet = candidates.slice(0, settings.warmArchives);

    log(`cold: ${COLD_WARMUP_PAIRS} warm-up pairs, then ${coldSet.length} archives direct and proxied ...`);
    upstream.clearRecords();
    const coldResult = await coldPass(coldSet, warmup, upstream, cold);
    log(`fill: ${fillSet.length} archives through the proxy ...`);
    const fill = await fillPass(fillSet, settings.fillConcurrency, upstream, cold);
    // A client has its bytes before the proxy's fsync and rename: let those finish first.
    await waitForIdle(cold, control);
    await cold.stop();
    await checkStored(warmSet, packagesDir);

    log('restarting serve --proxy and starting the static file server ...');
    const warm = await startServer(serveSpec(registryDir, scratch, settings, 'serve-warm'));
    children.push(warm);
    await waitForSync(warm, control);
    const staticServer = await startServer({
      name: 'static',
      args: ['--import', 'tsx', STATIC_SERVER, packagesDir],
      cwd: repoRoot,
      urlFrom: 'stdout',
      profileDir: settings.profileDir,
    });
    children.push(staticServer);
    const archiveRequests = upstream.archiveRequests;
    const warmResult = await warmPass(settings, warmSet, warm, staticServer);
    if (upstream.archiveRequests !== archiveRequests) {
      throw new BenchFailure(
        `the upstream saw ${upstream.archiveRequests - archiveRequests} archive requests while stored archives were served`,
      );
    }
    report({
      settings,
      servedModules,
      candidates: candidates.length,
      cold: coldResult,
      fill,
      warm: warmResult,
    });
  } finally {
    control.destroy();
    await Promise.all(children.map((child) => child.stop()));
  }
}

async function main(): Promise<void> {
  const settings = readSettings();
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'moonbit-proxy-bench-'));
  log('building the fixture (cached after the first run) ...');
  const fixture = await buildFixture();
  let upstream: FakeUpstream | undefined;
  try {
    upstream = await FakeUpstream.start({ fixture, latencyMs: 0 });
    await bench(settings, fixture, upstream, scratch);
  } finally {
    await upstream?.stop();
    await fixture.cleanup();
    if (settings.keep) log(`kept ${scratch}`);
    else await rm(scratch, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (error) {
  console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
  if (!(error instanceof BenchFailure) && error instanceof Error) console.error(error.stack);
  process.exitCode = 1;
}
