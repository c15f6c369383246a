/**
 * Mirror benchmark: how long `mirror --full` takes against a slow upstream, compared with a
 * plain parallel download of the same archives, and how cheap a second run with nothing new is.
 *
 * The upstream is the test FakeUpstream serving the full fixture (the real mooncakes.io index,
 * synthetic archives) with an added latency per request, so the numbers measure how well the
 * mirror keeps its connections busy rather than raw loopback speed.
 *
 * Env: BENCH_LATENCY_MS (default 50), BENCH_CONCURRENCY (default 32, the default
 * `mirror.concurrency`), BENCH_BASELINE_CONCURRENCY (default: BENCH_CONCURRENCY; the baseline's
 * parallel curl processes: fix it, e.g. at 32, to compare several mirror concurrencies with one
 * baseline).
 * Exits non-zero only on functional failures; missed targets print `target missed` lines.
 */
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { FakeUpstream } from '../test/support/fake-upstream.js';
import { buildFixture, type Fixture, repoRoot } from '../test/support/fixture.js';
import { BenchFailure, CLI_BIN, envInteger, log, printTable, type RunResult, run } from './bench-support.js';

const CLI_MAIN = path.join(repoRoot, 'dist', 'cli', 'main.js');
const GNU_TIME = '/usr/bin/time';
/**
 * URLs per curl process in the baseline. Each curl fetches its URLs one after another over one
 * keep-alive connection, like a pooled client would; 20 keeps process start-up negligible next
 * to 20 round trips, and the tail when fewer than N processes are left short (20 x latency).
 */
const CURL_BATCH = 20;
const TARGET_RATIO = 1.5;
const TARGET_SECOND_SECONDS = 2;
const TARGET_SECOND_REQUESTS = 0;

interface Settings {
  latencyMs: number;
  concurrency: number;
  /** Parallel curl processes of the baseline. */
  baselineConcurrency: number;
}

function readSettings(): Settings {
  const concurrency = envInteger('BENCH_CONCURRENCY', 32, 1);
  return {
    latencyMs: envInteger('BENCH_LATENCY_MS', 50, 0),
    concurrency,
    baselineConcurrency: envInteger('BENCH_BASELINE_CONCURRENCY', concurrency, 1),
  };
}

// ---------------------------------------------------------------------------------------------
// Child processes

function expectSuccess(what: string, result: RunResult): RunResult {
  if (result.code !== 0) {
    // `--json` reports a failed run as a JSON object on stdout; crashes and warnings go to stderr.
    const tail = (text: string) => text.trim().split('\n').slice(-15).join('\n');
    throw new BenchFailure(
      `${what} exited with ${result.code}:\n${tail(result.stderr)}\n${tail(result.stdout)}`,
    );
  }
  return result;
}

function cli(cwd: string, args: string[]): Promise<RunResult> {
  return run(process.execPath, [CLI_BIN, ...args], cwd);
}

// ---------------------------------------------------------------------------------------------
// Peak RSS of a CLI run

interface MeasuredRun extends RunResult {
  peakRssKiB: number | undefined;
}

type RssMethod = 'gnu-time' | 'in-process';

/**
 * GNU time reports the largest max RSS among the CLI and the git processes it waits for. Without
 * it, a launcher runs the CLI in-process and prints its own maxRSS at exit (node only, no git).
 */
async function rssMethod(): Promise<RssMethod> {
  try {
    await access(GNU_TIME, constants.X_OK);
    return 'gnu-time';
  } catch {
    return 'in-process';
  }
}

const RSS_MARKER = 'BENCH_MAXRSS_KIB=';
const LAUNCHER = `
const [mainUrl, ...args] = process.argv.slice(1);
process.on('exit', () => process.stderr.write('\\n${RSS_MARKER}' + process.resourceUsage().maxRSS + '\\n'));
const { main } = await import(mainUrl);
await main(['node', 'moonbit-registry', ...args]);
`;

async function measuredCli(
  method: RssMethod,
  cwd: string,
  args: string[],
  scratch: string,
): Promise<MeasuredRun> {
  if (method === 'gnu-time') {
    const rssFile = path.join(scratch, `rss-${process.hrtime.bigint()}.txt`);
    const result = await run(GNU_TIME, ['-f', '%M', '-o', rssFile, process.execPath, CLI_BIN, ...args], cwd);
    const text = await readFile(rssFile, 'utf8').catch(() => '');
    // On failure GNU time writes "Command exited with non-zero status N" before the number.
    return { ...result, peakRssKiB: lastInteger(text) };
  }
  const launcherArgs = ['--input-type=module', '-e', LAUNCHER, pathToFileURL(CLI_MAIN).href, ...args];
  const result = await run(process.execPath, launcherArgs, cwd);
  const marker = result.stderr.lastIndexOf(RSS_MARKER);
  const peak = marker >= 0 ? lastInteger(result.stderr.slice(marker + RSS_MARKER.length)) : undefined;
  return {
    ...result,
    stderr: marker >= 0 ? result.stderr.slice(0, marker) : result.stderr,
    peakRssKiB: peak,
  };
}

function lastInteger(text: string): number | undefined {
  const match = /(\d+)\s*$/.exec(text.trim());
  return match?.[1] ? Number(match[1]) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Baseline: xargs + curl

interface BaselineResult {
  seconds: number;
  files: number;
  archiveRequests: number;
}

/**
 * N curl processes at a time, each fetching CURL_BATCH URLs over one keep-alive connection and
 * writing the bodies into a folder (no fsync, no checksum): the floor for N parallel transfers.
 */
async function runBaseline(
  urls: string[],
  settings: Settings,
  upstream: FakeUpstream,
  scratch: string,
): Promise<BaselineResult> {
  const listFile = path.join(scratch, 'urls.txt');
  const outDir = path.join(scratch, 'baseline-out');
  await mkdir(outDir);
  await writeFile(listFile, `${urls.join('\n')}\n`);
  const before = upstream.archiveRequests;
  const parallel = String(settings.baselineConcurrency);
  const args = ['-a', listFile, '-d', '\n', '-P', parallel, '-n', String(CURL_BATCH)];
  const curl = ['curl', '-sS', '--fail', '--fail-early', '--remote-name-all', '--output-dir', outDir];
  const result = expectSuccess('xargs curl', await run('xargs', [...args, ...curl], scratch));
  // Names are the still-encoded last URL segment, so one file per URL.
  const files = (await readdir(outDir)).length;
  if (files !== urls.length) throw new BenchFailure(`baseline wrote ${files} files for ${urls.length} URLs`);
  await rm(outDir, { recursive: true, force: true });
  return { seconds: result.seconds, files, archiveRequests: upstream.archiveRequests - before };
}

function archiveUrls(fixture: Fixture, baseUrl: string): string[] {
  const urls: string[] = [];
  for (const [module, versions] of fixture.modules) {
    for (const version of versions.keys()) {
      const key = new URLSearchParams({ k: `${module}/${version}` }).toString().slice(2);
      urls.push(`${baseUrl}/user/${key}.zip`);
    }
  }
  return urls;
}

// ---------------------------------------------------------------------------------------------
// Mirror runs

const SummarySchema = z.object({
  modules: z.number(),
  versions: z.number(),
  downloaded: z.number(),
  skipped: z.number(),
  failed: z.number(),
  bytes: z.number(),
  seconds: z.number(),
  served: z.object({ modules: z.number(), versions: z.number(), changed: z.boolean() }),
});
type Summary = z.infer<typeof SummarySchema>;

interface MirrorRun {
  seconds: number;
  peakRssKiB: number | undefined;
  summary: Summary;
  archiveRequests: number;
}

/** A fresh registry whose only enabled source is the fake upstream. */
async function createRegistry(scratch: string, upstreamUrl: string, settings: Settings): Promise<string> {
  const dir = path.join(scratch, 'registry');
  expectSuccess('init', await cli(scratch, ['init', dir, '--name', 'bench']));
  const steps = [
    ['source', 'add', 'fake', '--url', upstreamUrl, '--type', 'moonbit-registry'],
    ['source', 'default', 'fake'],
    // The preset mooncakes.io source is unreachable here; disabled, it costs nothing.
    ['source', 'disable', 'mooncakes'],
    ['config', 'mirror.concurrency', String(settings.concurrency)],
  ];
  for (const args of steps) expectSuccess(args.join(' '), await cli(dir, args));
  return dir;
}

async function runMirror(
  method: RssMethod,
  registryDir: string,
  upstream: FakeUpstream,
  scratch: string,
): Promise<MirrorRun> {
  const before = upstream.archiveRequests;
  const result = await measuredCli(method, registryDir, ['mirror', '--full', '-q', '--json'], scratch);
  expectSuccess('mirror --full', result);
  const parsed = SummarySchema.safeParse(parseJson(result.stdout));
  if (!parsed.success) throw new BenchFailure(`mirror printed no usable JSON summary:\n${result.stdout}`);
  return {
    seconds: result.seconds,
    peakRssKiB: result.peakRssKiB,
    summary: parsed.data,
    archiveRequests: upstream.archiveRequests - before,
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function checkFirstRun(run: MirrorRun, expectedVersions: number): void {
  const { downloaded, failed } = run.summary;
  if (failed !== 0 || downloaded !== expectedVersions) {
    throw new BenchFailure(
      `first mirror: downloaded ${downloaded} (expected ${expectedVersions}), failed ${failed} (expected 0)`,
    );
  }
}

function checkSecondRun(run: MirrorRun): void {
  const { downloaded, failed, served } = run.summary;
  if (downloaded !== 0 || failed !== 0 || served.changed) {
    throw new BenchFailure(
      `second mirror: downloaded ${downloaded}, failed ${failed}, index changed ${served.changed} (expected 0, 0, false)`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Report

interface Report {
  settings: Settings;
  method: RssMethod;
  versions: number;
  modules: number;
  baseline: BaselineResult;
  first: MirrorRun;
  second: MirrorRun;
}

function mib(kib: number | undefined): string {
  return kib === undefined ? 'n/a' : (kib / 1024).toFixed(1);
}

function printHeader(r: Report): void {
  const { latencyMs, concurrency, baselineConcurrency } = r.settings;
  const floor = (r.versions * latencyMs) / 1000 / concurrency;
  console.log('');
  console.log(
    `${r.modules} modules, ${r.versions} versions; latency ${latencyMs} ms/request; concurrency ${concurrency}; ` +
      `latency floor ${floor.toFixed(1)} s (versions x latency / concurrency)`,
  );
  console.log(
    `baseline: xargs -P ${baselineConcurrency} -n ${CURL_BATCH} curl (one keep-alive connection per curl, bodies to a temp dir, no fsync)`,
  );
  console.log(
    `peak RSS: ${r.method === 'gnu-time' ? `${GNU_TIME} -f %M` : 'in-process launcher (node only)'}`,
  );
  console.log("wall s: measured here around the child process; in-cli s: the summary's own `seconds`");
  console.log('');
}

function printRuns(r: Report): void {
  const row = (name: string, run: MirrorRun) => [
    name,
    run.seconds.toFixed(2),
    run.summary.seconds.toFixed(2),
    String(run.archiveRequests),
    `${run.summary.downloaded}/${run.summary.skipped}/${run.summary.failed}`,
    mib(run.peakRssKiB),
  ];
  const { baseline } = r;
  printTable([
    ['run', 'wall s', 'in-cli s', 'archive reqs', 'down/skip/fail', 'peak RSS MiB'],
    [
      'baseline',
      baseline.seconds.toFixed(2),
      '-',
      String(baseline.archiveRequests),
      `${baseline.files}/0/0`,
      '-',
    ],
    row('mirror --full', r.first),
    row('mirror --full (again)', r.second),
  ]);
  console.log('');
}

/** One line per target, `target met` or `target missed`: a miss is a finding, not a failure. */
function printTargets(r: Report, ratio: number): void {
  const targets: Array<[ok: boolean, text: string]> = [
    [ratio <= TARGET_RATIO, `full/baseline ratio ${ratio.toFixed(2)}x (target <= ${TARGET_RATIO}x)`],
    [
      r.second.seconds < TARGET_SECOND_SECONDS,
      `second run ${r.second.seconds.toFixed(2)} s (target < ${TARGET_SECOND_SECONDS} s)`,
    ],
    [
      r.second.archiveRequests <= TARGET_SECOND_REQUESTS,
      `second run archive requests ${r.second.archiveRequests} (target ${TARGET_SECOND_REQUESTS})`,
    ],
  ];
  for (const [ok, text] of targets) console.log(`${ok ? 'target met' : 'target missed'}: ${text}`);
}

function report(r: Report): void {
  const ratio = r.first.seconds / r.baseline.seconds;
  printHeader(r);
  printRuns(r);
  printTargets(r, ratio);
  const peaks = [r.first.peakRssKiB, r.second.peakRssKiB].filter((kib) => kib !== undefined);
  const peak = peaks.length > 0 ? Math.max(...peaks) : undefined;
  console.log(
    `RESULT concurrency=${r.settings.concurrency} baseline_concurrency=${r.settings.baselineConcurrency} ` +
      `full=${r.first.seconds.toFixed(2)}s baseline=${r.baseline.seconds.toFixed(2)}s ratio=${ratio.toFixed(2)}x ` +
      `full_archive_requests=${r.first.archiveRequests} second=${r.second.seconds.toFixed(2)}s second_archive_requests=${r.second.archiveRequests} ` +
      `peak_rss=${mib(peak)}MiB`,
  );
}

// ---------------------------------------------------------------------------------------------

/** Baseline, then a first mirror into an empty registry, then a second one with nothing new. */
async function bench(
  settings: Settings,
  fixture: Fixture,
  upstream: FakeUpstream,
  scratch: string,
): Promise<void> {
  const method = await rssMethod();
  const urls = archiveUrls(fixture, upstream.url);
  log(`baseline: ${urls.length} archives with xargs -P ${settings.baselineConcurrency} curl ...`);
  const baseline = await runBaseline(urls, settings, upstream, scratch);
  log(`baseline took ${baseline.seconds.toFixed(2)} s; mirror --full ...`);
  const registryDir = await createRegistry(scratch, upstream.url, settings);
  const first = await runMirror(method, registryDir, upstream, scratch);
  checkFirstRun(first, urls.length);
  log(`mirror took ${first.seconds.toFixed(2)} s; mirror --full again ...`);
  const second = await runMirror(method, registryDir, upstream, scratch);
  checkSecondRun(second);
  const versions = urls.length;
  report({ settings, method, versions, modules: fixture.modules.size, baseline, first, second });
}

async function main(): Promise<void> {
  const settings = readSettings();
  log('building the fixture (cached under .cache/fixtures) ...');
  const fixture = await buildFixture();
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'moonbit-bench-'));
  let upstream: FakeUpstream | undefined;
  try {
    upstream = await FakeUpstream.start({ fixture, latencyMs: settings.latencyMs });
    await bench(settings, fixture, upstream, scratch);
  } finally {
    await upstream?.stop();
    await fixture.cleanup();
    await rm(scratch, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (error) {
  console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
  if (!(error instanceof BenchFailure) && error instanceof Error) console.error(error.stack);
  process.exitCode = 1;
}
