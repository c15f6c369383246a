/**
 * Load benchmark: what a clone of the index costs the server, with its upload-pack answer cache
 * off and on, measured in one run on one registry folder.
 *
 * Setup. A FakeUpstream (this process, no added latency) serves the full fixture (the real
 * mooncakes.io index, 887 modules, ~6.5k small synthetic archives); a fresh registry mirrors it
 * all (`mirror --full`: index commit A), then `serve` runs as a child process (its request log
 * to a file). Through a recording proxy in this process (bench/recording-proxy.ts) a real git
 * clones the index as `moon update` does (`git clone --depth 1`, git's default protocol v2).
 * Then the upstream publishes one new version and the registry mirrors it (commit B, one new
 * index line, with `serve` still running), and through the proxy a real git makes a fresh
 * shallow clone (at B) and `git pull`s the first clone from A to B. The proxy keeps each
 * request's method, path and query, the headers that change git's answer (Git-Protocol,
 * Content-Type, Content-Encoding, Accept) and body, and the answer's status and length: in
 * bytes, and as pkt-line content (bench/pkt-line-meter.ts). git frames the same pack into a
 * different number of side-band pkt-lines each time (as pack-objects' output happens to reach
 * upload-pack), so two correct answers can differ by a few times 5 bytes; their content cannot.
 *
 * Then, for each arm, cache off (`[server] upload_pack_cache_bytes = 0`) and cache on (64 MiB),
 * `serve` is restarted on the same folder with that setting and measured three ways:
 *
 * (b) Replay, the server alone: BENCH_REPLAY_CONNECTIONS (64) keep-alive HTTP clients in this
 *     process (undici, no git; bench/http-replay.ts) send the recorded clone's requests in
 *     order, again and again, for BENCH_REPLAY_SECONDS (15); then the same for the pull. A
 *     clone (or pull) is the whole sequence; it counts only when every answer has the recorded
 *     status (200) and content length, anything else is an error. Reported: sequences per second
 *     (over the time until the last one begun in time ends), sequence p50/p99, and the server's
 *     CPU per sequence and in cores, with the CPU this process used as the load generator.
 * (a) + (c) Real clients: BENCH_CLIENTS (200) workers act as `moon` for BENCH_SECONDS (60)
 *     (bench/moon-load.ts): each session is a shallow clone of the index with git, then the
 *     closure of a random module resolved and its archives downloaded and checked. Reported:
 *     sessions and requests per second, clone and archive p50/p99, errors, the server's peak
 *     RSS (sampled every 100 ms from /proc) and the most `git upload-pack` processes under it
 *     at once; and (a) the server's CPU per clone: the CPU of its whole process tree from
 *     /proc (utime+stime+cutime+cstime of the server, which counts the git processes it
 *     reaped, plus every descendant still alive; bench/proc-stats.ts) between the start and
 *     the end of the load, divided by the clones completed, split into the Node process's own
 *     CPU and its git children's. It includes the archive downloads' share, which the cache
 *     does not change. The real git clients share the 2-core machine with the server and
 *     cost about as much CPU per clone as it does, so sessions per second say little about
 *     the server; (a) and (b) do. When the server answers at once, the 200 clients all start
 *     together and share the cores evenly, so their first clones end together: clone p50 and
 *     p99 then both measure how long the machine takes for 200 client-side clones.
 *
 * Each arm also prints what the server's request log says: the server's own time per git and
 * per archive request under the real load (request to response end, as logged: next to the
 * clients' latencies it shows which side was slow), responses by status (a 503 is a client
 * turned away for lack of a git slot) and its warnings and errors.
 *
 * Targets: with the cache, server CPU per clone under the real load at least 10x lower and
 * replayed clones (and pulls) per second at least 5x higher than without; with real clients and
 * the cache, clone p99 under 20.4 s and archive p99 under 12.4 s (the numbers before the cache);
 * in both arms 0 errors and server RSS under 300 MB.
 *
 * Env: BENCH_CLIENTS (200), BENCH_SECONDS (60), BENCH_SEED (1), BENCH_REPLAY_SECONDS (15),
 * BENCH_REPLAY_CONNECTIONS (64); BENCH_KEEP (when set, the scratch folder is kept, with the
 * registry and the servers' logs). Exits non-zero only on functional failures during set-up;
 * errors under load are counted and reported, missed targets print `target missed` lines.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FakeUpstream } from '../test/support/fake-upstream.js';
import { buildFixture, type Fixture } from '../test/support/fixture.js';
import { git } from '../test/support/git.js';
import { type RegistryIndex, readIndex, type UpdateAction, update } from '../test/support/moon-client.js';
import { BenchFailure, CLI_BIN, envInteger, log, percentile, run } from './bench-support.js';
import { type ReplayResult, replay } from './http-replay.js';
import { type MoonLoadResult, moonLoad } from './moon-load.js';
import { cpuBetween, startPeakSampler, type TreeCpu, treeCpu } from './proc-stats.js';
import { type Exchange, startRecordingProxy } from './recording-proxy.js';
import {
  describeServeLog,
  describeServeTimes,
  type ServeLogSummary,
  summarizeServeLog,
} from './serve-log.js';

const TARGET_CPU_RATIO = 10;
const TARGET_REPLAY_RATIO = 5;
const TARGET_CLONE_P99_MS = 20_400;
const TARGET_ARCHIVE_P99_MS = 12_400;
const TARGET_RSS_MIB = 300;
const CACHE_ON_BYTES = 64 * 1024 * 1024;
const REPLAY_TIMEOUT_MS = 60_000;

interface Settings {
  clients: number;
  seconds: number;
  seed: number;
  replaySeconds: number;
  replayConnections: number;
  /** Keep the scratch folder (registry, server logs). */
  keep: boolean;
}

type Arm = 'off' | 'on';

interface Recording {
  clone: Exchange[];
  pull: Exchange[];
  /** The index at commit B, as every clone gets it. */
  index: RegistryIndex;
}

interface ReplayRun extends ReplayResult {
  serverCpu: TreeCpu;
  /** CPU this process (the replaying clients) used, ms. */
  loadCpuMs: number;
}

interface RealRun extends MoonLoadResult {
  seconds: number;
  serverCpu: TreeCpu;
  peakRssMiB: number;
  peakUploadPacks: number;
}

interface ArmResult {
  arm: Arm;
  clone: ReplayRun;
  pull: ReplayRun;
  real: RealRun;
  /** The server's request log: all of it, and what it logged during the real clients' load. */
  serverLog: ServeLogSummary;
  realServerLog: ServeLogSummary;
}

interface Server {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

function readSettings(): Settings {
  return {
    clients: envInteger('BENCH_CLIENTS', 200, 1),
    seconds: envInteger('BENCH_SECONDS', 60, 1),
    seed: envInteger('BENCH_SEED', 1, 0),
    replaySeconds: envInteger('BENCH_REPLAY_SECONDS', 15, 1),
    replayConnections: envInteger('BENCH_REPLAY_CONNECTIONS', 64, 1),
    keep: Boolean(process.env.BENCH_KEEP),
  };
}

// ---------------------------------------------------------------------------------------------
// The registry and its server

async function cli(args: string[], cwd: string): Promise<void> {
  const result = await run(process.execPath, [CLI_BIN, ...args], cwd);
  if (result.code !== 0) throw new BenchFailure(`${args.join(' ')} failed:\n${result.stderr}`);
}

async function createRegistry(scratch: string, upstream: FakeUpstream): Promise<string> {
  const root = path.join(scratch, 'registry');
  await cli(['init', root, '--name', 'load-bench'], scratch);
  await cli(['source', 'add', 'up', '--url', upstream.url, '--index-url', upstream.indexUrl], root);
  await cli(['source', 'default', 'up'], root);
  await cli(['source', 'disable', 'mooncakes'], root);
  return root;
}

/** The commit the registry serves. */
function servedTip(root: string): Promise<string> {
  return git(['-C', path.join(root, 'data', 'index'), 'rev-parse', 'HEAD']).then((out) => out.trim());
}

async function startServe(root: string, logFile: string): Promise<Server> {
  const logFd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [CLI_BIN, 'serve', '--port', '0'], {
    cwd: root,
    stdio: ['ignore', logFd, 'pipe'],
  });
  closeSync(logFd);
  const exited = new Promise<void>((done) => child.once('close', () => done()));
  const url = await new Promise<string>((done, fail) => {
    let text = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const match = /(http:\/\/127\.0\.0\.1:\d+)/.exec(text);
      if (match?.[1]) done(match[1]);
    });
    child.once('close', (code) =>
      fail(new BenchFailure(`serve exited (${code}) before listening:\n${text}`)),
    );
  });
  return {
    url,
    pid: child.pid as number,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Recording

async function expectUpdate(url: string, home: string, expected: UpdateAction): Promise<void> {
  const result = await update(url, home);
  if (result.action !== expected) {
    throw new BenchFailure(`expected a ${expected}, git did a ${result.action}: ${result.pullError ?? ''}`);
  }
}

function describe(sequence: Exchange[]): string {
  return sequence
    .map((e) => {
      const content = e.contentBytes === undefined ? '' : ` (${e.contentBytes} B content)`;
      return `${e.method} ${e.path.replace(/^\/git\/index\//, '')} ${e.status} ${e.responseBytes} B${content}`;
    })
    .join(', ');
}

/**
 * Commit A is served: a real clone through the proxy. Then commit B (one new version), and
 * through the proxy a fresh clone at B and the pull of the first clone from A to B.
 */
async function record(root: string, scratch: string, fixture: Fixture, server: Server): Promise<Recording> {
  const proxy = await startRecordingProxy(server.url);
  try {
    const oldHome = path.join(scratch, 'record-old');
    const newHome = path.join(scratch, 'record-new');
    await expectUpdate(proxy.url, oldHome, 'clone');
    proxy.take();
    const before = await servedTip(root);
    const [module] = fixture.modules.keys();
    await fixture.addVersion(module as string, '99.0.0');
    await cli(['mirror', '--full', '-q'], root);
    if ((await servedTip(root)) === before)
      throw new BenchFailure('the second mirror made no new index commit');
    await expectUpdate(proxy.url, newHome, 'clone');
    const clone = proxy.take();
    await expectUpdate(proxy.url, oldHome, 'pull');
    const pull = proxy.take();
    for (const e of [...clone, ...pull]) {
      if (e.status !== 200) throw new BenchFailure(`recorded ${e.method} ${e.path} got ${e.status}`);
    }
    log(`recorded clone: ${describe(clone)}`);
    log(`recorded pull: ${describe(pull)}`);
    return { clone, pull, index: await readIndex(newHome) };
  } finally {
    await proxy.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Measuring one arm

function cpuNow(server: Server): TreeCpu {
  const cpu = treeCpu(server.pid);
  if (!cpu) throw new BenchFailure('the server is gone');
  return cpu;
}

async function measureReplay(server: Server, sequence: Exchange[], settings: Settings): Promise<ReplayRun> {
  const cpuBefore = cpuNow(server);
  const ownBefore = process.cpuUsage();
  const result = await replay(server.url, sequence, {
    connections: settings.replayConnections,
    seconds: settings.replaySeconds,
    timeoutMs: REPLAY_TIMEOUT_MS,
  });
  const own = process.cpuUsage(ownBefore);
  return {
    ...result,
    serverCpu: cpuBetween(cpuBefore, cpuNow(server)),
    loadCpuMs: (own.user + own.system) / 1000,
  };
}

async function measureReal(
  server: Server,
  index: RegistryIndex,
  settings: Settings,
  scratch: string,
): Promise<RealRun> {
  const sampler = startPeakSampler(server.pid);
  const cpuBefore = cpuNow(server);
  const started = performance.now();
  const result = await moonLoad(server.url, index, { ...settings, scratch });
  const seconds = (performance.now() - started) / 1000;
  const serverCpu = cpuBetween(cpuBefore, cpuNow(server));
  const peak = sampler.stop();
  return { ...result, seconds, serverCpu, peakRssMiB: peak.rssMiB, peakUploadPacks: peak.uploadPacks };
}

async function measureArm(
  arm: Arm,
  root: string,
  scratch: string,
  recording: Recording,
  settings: Settings,
): Promise<ArmResult> {
  await cli(['config', 'server.upload_pack_cache_bytes', String(arm === 'on' ? CACHE_ON_BYTES : 0)], root);
  const logFile = path.join(scratch, `serve-${arm}.log`);
  const server = await startServe(root, logFile);
  let measured: Omit<ArmResult, 'serverLog' | 'realServerLog'>;
  let realFrom = 0;
  try {
    log(
      `cache ${arm}: replaying the clone, ${settings.replayConnections} connections, ${settings.replaySeconds} s ...`,
    );
    const clone = await measureReplay(server, recording.clone, settings);
    log(`cache ${arm}: replaying the pull ...`);
    const pull = await measureReplay(server, recording.pull, settings);
    log(`cache ${arm}: ${settings.clients} real clients for ${settings.seconds} s ...`);
    realFrom = statSync(logFile).size;
    const real = await measureReal(server, recording.index, settings, scratch);
    measured = { arm, clone, pull, real };
  } finally {
    await server.stop();
  }
  return {
    ...measured,
    serverLog: await summarizeServeLog(logFile),
    realServerLog: await summarizeServeLog(logFile, realFrom),
  };
}

// ---------------------------------------------------------------------------------------------
// Report

const ms = (v: number) => `${v.toFixed(1)}ms`;
const total = (cpu: TreeCpu) => cpu.selfMs + cpu.childrenMs;
const perSecond = (r: ReplayRun) => r.sequences / r.seconds;
/** Server CPU (whole tree) per clone under the real load, ms. */
const cpuPerClone = (r: RealRun) => total(r.serverCpu) / r.clones.length;
const ratio = (off: number, on: number) => off / on;
/** Failed sessions and replayed sequences. */
const errorsOf = (a: ArmResult) => a.real.errors.length + a.clone.errors + a.pull.errors;

function printReplay(arm: Arm, what: string, r: ReplayRun, connections: number): void {
  const cpu = total(r.serverCpu);
  console.log(
    `cache ${arm}: replayed ${what}: ${perSecond(r).toFixed(1)}/s (${r.sequences} in ${r.seconds.toFixed(1)} s, ` +
      `${connections} connections) p50=${ms(r.p50Ms)} p99=${ms(r.p99Ms)} errors=${r.errors}; ` +
      `server ${ms(cpu / r.sequences)} CPU per ${what}, ${(cpu / 1000 / r.seconds).toFixed(2)} cores; ` +
      `replayer ${(r.loadCpuMs / 1000 / r.seconds).toFixed(2)} cores`,
  );
  for (const message of r.errorSamples) console.log(`cache ${arm}: replay error: ${message.slice(0, 300)}`);
}

function printReal(arm: Arm, r: RealRun, settings: Settings): void {
  const clones = r.clones.length;
  console.log(
    `cache ${arm}: real clients=${settings.clients} seconds=${settings.seconds} sessions=${r.sessions} ` +
      `clones=${clones} archive_requests=${r.archives.length} ` +
      `(${(r.sessions / settings.seconds).toFixed(2)} sessions/s, ${((clones + r.archives.length) / settings.seconds).toFixed(1)} requests/s)`,
  );
  console.log(
    `cache ${arm}: clone p50=${ms(percentile(r.clones, 0.5))} p99=${ms(percentile(r.clones, 0.99))}; ` +
      `archive p50=${ms(percentile(r.archives, 0.5))} p99=${ms(percentile(r.archives, 0.99))}; errors=${r.errors.length}; ` +
      `server peak RSS ${r.peakRssMiB.toFixed(1)} MiB, at most ${r.peakUploadPacks} git upload-pack at once`,
  );
  console.log(
    `cache ${arm}: server CPU ${ms(cpuPerClone(r))} per clone (node ${ms(r.serverCpu.selfMs / clones)}, ` +
      `git children ${ms(r.serverCpu.childrenMs / clones)}; ${(total(r.serverCpu) / 1000).toFixed(1)} s over ${r.seconds.toFixed(1)} s)`,
  );
  for (const message of [...new Set(r.errors)].slice(0, 5))
    console.log(`cache ${arm}: error: ${message.slice(0, 300)}`);
}

/** One line per target, `target met` or `target missed`: a miss is a finding, not a failure. */
function printTargets(off: ArmResult, on: ArmResult): void {
  const cpu = ratio(cpuPerClone(off.real), cpuPerClone(on.real));
  const replayRatio = (pick: (a: ArmResult) => ReplayRun) => ratio(perSecond(pick(on)), perSecond(pick(off)));
  const targets: Array<[ok: boolean, text: string]> = [
    [
      cpu >= TARGET_CPU_RATIO,
      `server CPU per clone ${ms(cpuPerClone(off.real))} off, ${ms(cpuPerClone(on.real))} on: ${cpu.toFixed(1)}x lower (target >= ${TARGET_CPU_RATIO}x)`,
    ],
  ];
  for (const [what, pick] of [
    ['clones', (a: ArmResult) => a.clone],
    ['pulls', (a: ArmResult) => a.pull],
  ] as const) {
    const r = replayRatio(pick);
    targets.push([
      r >= TARGET_REPLAY_RATIO,
      `replayed ${what} per second ${perSecond(pick(off)).toFixed(1)} off, ${perSecond(pick(on)).toFixed(1)} on: ${r.toFixed(1)}x (target >= ${TARGET_REPLAY_RATIO}x)`,
    ]);
  }
  const clone99 = percentile(on.real.clones, 0.99);
  const archive99 = percentile(on.real.archives, 0.99);
  targets.push(
    [
      clone99 < TARGET_CLONE_P99_MS,
      `cache on: real clone p99 ${ms(clone99)} (target < ${ms(TARGET_CLONE_P99_MS)})`,
    ],
    [
      archive99 < TARGET_ARCHIVE_P99_MS,
      `cache on: real archive p99 ${ms(archive99)} (target < ${ms(TARGET_ARCHIVE_P99_MS)})`,
    ],
  );
  for (const a of [off, on]) {
    targets.push(
      [errorsOf(a) === 0, `cache ${a.arm}: errors ${errorsOf(a)} (target 0)`],
      [
        a.real.peakRssMiB < TARGET_RSS_MIB,
        `cache ${a.arm}: server peak RSS ${a.real.peakRssMiB.toFixed(1)} MiB (target < ${TARGET_RSS_MIB} MiB)`,
      ],
    );
  }
  for (const [ok, text] of targets) console.log(`${ok ? 'target met' : 'target missed'}: ${text}`);
}

function armFields(a: ArmResult, settings: Settings): string {
  const r = a.real;
  return [
    `cpu_per_clone=${ms(cpuPerClone(r))}`,
    `replay_clones_per_s=${perSecond(a.clone).toFixed(1)}`,
    `replay_pulls_per_s=${perSecond(a.pull).toFixed(1)}`,
    `sessions_per_s=${(r.sessions / settings.seconds).toFixed(2)}`,
    `clone_p50=${ms(percentile(r.clones, 0.5))}`,
    `clone_p99=${ms(percentile(r.clones, 0.99))}`,
    `archive_p50=${ms(percentile(r.archives, 0.5))}`,
    `archive_p99=${ms(percentile(r.archives, 0.99))}`,
    `errors=${errorsOf(a)}`,
    `peak_rss=${r.peakRssMiB.toFixed(1)}MiB`,
    `peak_upload_packs=${r.peakUploadPacks}`,
  ]
    .map((field) => `${a.arm}_${field}`)
    .join(' ');
}

function report(off: ArmResult, on: ArmResult, settings: Settings): void {
  for (const a of [off, on]) {
    printReplay(a.arm, 'clone', a.clone, settings.replayConnections);
    printReplay(a.arm, 'pull', a.pull, settings.replayConnections);
    printReal(a.arm, a.real, settings);
    console.log(
      `cache ${a.arm}: server's own time under the real load: ${describeServeTimes(a.realServerLog)}`,
    );
    console.log(`cache ${a.arm}: server log: ${describeServeLog(a.serverLog)}`);
  }
  printTargets(off, on);
  console.log(
    `RESULT load clients=${settings.clients} ${armFields(off, settings)} ${armFields(on, settings)} ` +
      `cpu_ratio=${ratio(cpuPerClone(off.real), cpuPerClone(on.real)).toFixed(1)}x ` +
      `replay_clone_ratio=${ratio(perSecond(on.clone), perSecond(off.clone)).toFixed(1)}x ` +
      `replay_pull_ratio=${ratio(perSecond(on.pull), perSecond(off.pull)).toFixed(1)}x`,
  );
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const settings = readSettings();
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'mr-load-bench-'));
  const fixture = await buildFixture();
  const upstream = await FakeUpstream.start({ fixture });
  try {
    log('mirroring the whole snapshot ...');
    const root = await createRegistry(scratch, upstream);
    await cli(['mirror', '--full', '-q'], root);
    const recorder = await startServe(root, path.join(scratch, 'serve-record.log'));
    let recording: Recording;
    try {
      recording = await record(root, scratch, fixture, recorder);
    } finally {
      await recorder.stop();
    }
    const tip = await servedTip(root);
    const off = await measureArm('off', root, scratch, recording, settings);
    const on = await measureArm('on', root, scratch, recording, settings);
    if ((await servedTip(root)) !== tip)
      throw new BenchFailure('the served index changed during the measurements');
    report(off, on, settings);
  } finally {
    await upstream.stop();
    await fixture.cleanup();
    if (settings.keep) log(`kept ${scratch}`);
    else await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
