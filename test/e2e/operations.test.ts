/**
 * What operators look at: `GET /metrics`, `GET /status` and `moonbit-registry status` telling
 * the same facts (mirror runs, downloads, archives, sources), and the server's log formats.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { runCli, runCliOk, startServe, tempDir } from '../support/cli.js';
import type { FakeUpstream } from '../support/fake-upstream.js';
import { type MirroredRegistry, mirroredRegistry } from '../support/mirrored-registry.js';
import { archiveUrl, install, latest, readIndex, update } from '../support/moon-client.js';

const MODULE = 'moonbitlang/regexp';
const exec = promisify(execFile);

let setup: MirroredRegistry;
let upstream: FakeUpstream;
let registry: { root: string };
let scratch: { path: string };

before(async () => {
  setup = await mirroredRegistry([MODULE], 'mr-ops-');
  ({ upstream } = setup);
  registry = { root: setup.root };
  scratch = { path: setup.scratch };
  // A run that fails: recorded too, as an error.
  const failed = await runCli(['mirror', 'nobody/*', '-s', 'nope'], { cwd: registry.root });
  assert.equal(failed.code, 1);
});

after(async () => {
  await setup?.cleanup();
});

/** The value of one sample in Prometheus text, e.g. `name{a="b"}`; undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

interface StatusJson {
  registry: { name: string; mode: string };
  server: { running: boolean; pid: number | null };
  index: { modules: number; versions: number; commit: string | null };
  archives: { count: number; bytes: number };
  sources: Array<{
    name: string;
    state: string;
    versions_served: number;
    index_commit: string | null;
    last_sync: string | null;
  }>;
  mirror_runs: Array<{
    outcome: string;
    request: { patterns: string[] };
    downloaded: number;
    error: string | null;
  }>;
  downloads: Array<{ hour: string; count: number }>;
}

const lastHour = (report: StatusJson) => report.downloads.at(-1)?.count;

test('metrics, GET /status and `status` agree on mirror runs, archives, downloads and sources', async () => {
  const server = await startServe(registry.root, ['--log-format', 'json']);
  let stopped = false;
  try {
    const home = path.join(scratch.path, 'home');
    await update(server.url, home);
    const installed = await install(server.url, home, {
      [MODULE]: latest(await readIndex(home), MODULE) as string,
    });
    const downloads = installed.size;
    assert.ok(downloads >= 1);

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.equal(sample(metrics, 'moonbit_registry_archive_requests_total{result="hit"}'), downloads);
    assert.equal(
      sample(metrics, 'moonbit_registry_http_requests_total{route="archive",method="GET",status="200"}'),
      downloads,
    );
    assert.ok(
      (sample(
        metrics,
        'moonbit_registry_http_requests_total{route="git_upload_pack",method="POST",status="200"}',
      ) ?? 0) >= 1,
    );
    assert.ok((sample(metrics, 'moonbit_registry_http_response_bytes_total{route="archive"}') ?? 0) > 0);
    assert.equal(sample(metrics, 'moonbit_registry_mirror_runs_total{outcome="ok"}'), 1);
    assert.equal(sample(metrics, 'moonbit_registry_mirror_runs_total{outcome="error"}'), 1);
    assert.equal(sample(metrics, 'moonbit_registry_git_upload_pack_processes'), 0);
    assert.match(metrics, /^# TYPE moonbit_registry_http_request_duration_seconds histogram$/m);

    const statusResponse = await fetch(`${server.url}/status`, { headers: { Accept: 'application/json' } });
    // The same URLs give browsers HTML: caches in front must keep the two apart.
    assert.equal(statusResponse.headers.get('vary'), 'Accept');
    const unknown = await fetch(`${server.url}/user/nobody/nothing`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers.get('vary'), 'Accept', 'errors of those URLs too');
    await unknown.body?.cancel();
    const live = (await statusResponse.json()) as StatusJson;
    assert.equal(live.server.running, true);
    assert.equal(live.registry.mode, 'mirror');
    assert.equal(lastHour(live), downloads);
    assert.equal(sample(metrics, 'moonbit_registry_archives_stored'), live.archives.count);
    assert.equal(live.archives.count, live.index.versions, 'mirror mode stores every served version');
    assert.equal(live.sources.find((s) => s.name === 'up')?.versions_served, live.index.versions);
    assert.equal(live.sources.find((s) => s.name === 'mooncakes')?.state, 'disabled');
    assert.deepEqual(
      live.mirror_runs.map((run) => run.outcome),
      ['error', 'ok'],
      'newest first',
    );
    assert.match(live.mirror_runs[0]?.error ?? '', /unknown source "nope"/);
    assert.deepEqual(live.mirror_runs[1]?.request.patterns, [MODULE]);

    // The CLI reads the running server's facts from data/state.
    const whileRunning = JSON.parse(
      (await runCliOk(['status', '--json'], { cwd: registry.root })).stdout,
    ) as StatusJson;
    assert.equal(whileRunning.server.running, true);
    assert.equal(whileRunning.server.pid, server.process.pid);
    assert.equal(whileRunning.archives.count, live.archives.count);

    await server.stop();
    stopped = true;
    const afterStop = JSON.parse(
      (await runCliOk(['status', '--json'], { cwd: registry.root })).stdout,
    ) as StatusJson;
    assert.equal(afterStop.server.running, false);
    // Without a server, each source's last fetch and commit still come from data/sources.
    const up = afterStop.sources.find((source) => source.name === 'up');
    assert.ok(up?.index_commit && /^[0-9a-f]{40}$/.test(up.index_commit), JSON.stringify(up));
    assert.ok(up?.last_sync && Date.now() - Date.parse(up.last_sync) < 10 * 60_000, JSON.stringify(up));
    assert.equal(lastHour(afterStop), downloads, 'download counts are saved at shutdown');
    assert.deepEqual(afterStop.index, live.index);
    const text = (await runCliOk(['status'], { cwd: registry.root })).stdout;
    assert.match(text, /^Registry "e2e" \(mirror mode\)/m);
    assert.match(text, new RegExp(`^Archives: ${live.archives.count} stored`, 'm'));
    assert.match(text, /^ {2}up\*? +ok|^ {2}up\*? +unknown/m);
    assert.match(text, new RegExp(`ok +${MODULE.replace('/', '\\/')}: \\d+ downloaded`));
    assert.match(text, new RegExp(`^Downloads: ${downloads} in the last 48 hours`, 'm'));

    // One JSON access-log line per request.
    const requests = server
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string; url?: string; status?: number });
    // Archive requests only: `moon update` also asks for /symbols.zip.
    const archiveRequests = requests.filter(
      (r) => r.msg === 'request' && r.url?.startsWith('/user/') && r.url.endsWith('.zip'),
    );
    assert.equal(archiveRequests.length, downloads);
  } finally {
    if (!stopped) await server.stop();
  }
});

test('pull-through: upstream requests and cache misses by source; sync duration and age', async () => {
  const server = await startServe(registry.root, ['--proxy', '--log-format', 'json']);
  try {
    const home = path.join(scratch.path, 'home-proxy');
    for (let i = 0; i < 100; i++) {
      const health = (await (await fetch(`${server.url}/health`)).json()) as { sync?: { last_run: unknown } };
      if (health.sync?.last_run) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await update(server.url, home);
    const other = 'moonbitlang/x';
    await install(server.url, home, { [other]: latest(await readIndex(home), other) as string });
    // A miss is counted when its response has ended, which may be just after the client is done.
    let metrics = '';
    for (let i = 0; i < 40; i++) {
      metrics = await (await fetch(`${server.url}/metrics`)).text();
      const asked = sample(metrics, 'moonbit_registry_upstream_requests_total{source="up",kind="archive"}');
      if (
        asked !== undefined &&
        asked === sample(metrics, 'moonbit_registry_archive_requests_total{result="miss"}')
      )
        break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const misses = sample(metrics, 'moonbit_registry_archive_requests_total{result="miss"}') ?? 0;
    assert.ok(misses >= 1, metrics);
    assert.equal(
      sample(metrics, 'moonbit_registry_upstream_requests_total{source="up",kind="archive"}'),
      misses,
    );
    assert.equal(
      sample(metrics, 'moonbit_registry_upstream_errors_total{source="up",kind="archive"}'),
      undefined,
    );
    assert.equal(sample(metrics, 'moonbit_registry_upstream_requests_total{source="up",kind="index"}'), 1);
    assert.equal(sample(metrics, 'moonbit_registry_sync_duration_seconds_count{result="ok"}'), 1);
    const age = sample(metrics, 'moonbit_registry_sync_age_seconds') ?? -1;
    assert.ok(age >= 0 && age < 60, `sync age ${age}`);

    // Failed and cut-short archive answers are counted as such, never as downloads.
    const statusOf = async () =>
      (await (await fetch(`${server.url}/status`)).json()) as { downloads: Array<{ count: number }> };
    const downloadsBefore = (await statusOf()).downloads.at(-1)?.count;
    const info = (await (await fetch(`${server.url}/user/moonbitlang/core`)).json()) as {
      versions: Array<{ version: string; stored: boolean }>;
    };
    const [failing, cut] = info.versions.filter((v) => !v.stored).map((v) => v.version) as [string, string];
    upstream.faults.set(`moonbitlang/core@${failing}`, 'http500');
    upstream.faults.set(`moonbitlang/core@${cut}`, 'truncate');
    const failed = await fetch(archiveUrl(server.url, 'moonbitlang/core', failing));
    assert.equal(failed.status, 502);
    await failed.body?.cancel();
    await assert.rejects(
      fetch(archiveUrl(server.url, 'moonbitlang/core', cut)).then((res) => res.arrayBuffer()),
      'the client sees the cut',
    );
    upstream.faults.clear();
    let after = '';
    for (let i = 0; i < 40; i++) {
      after = await (await fetch(`${server.url}/metrics`)).text();
      if (sample(after, 'moonbit_registry_archive_requests_total{result="aborted"}') === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(sample(after, 'moonbit_registry_archive_requests_total{result="error"}'), 1);
    assert.equal(sample(after, 'moonbit_registry_archive_requests_total{result="aborted"}'), 1);
    assert.equal(sample(after, 'moonbit_registry_archive_requests_total{result="miss"}'), misses);
    assert.ok(
      (sample(after, 'moonbit_registry_upstream_errors_total{source="up",kind="archive"}') ?? 0) >= 2,
    );
    assert.equal((await statusOf()).downloads.at(-1)?.count, downloadsBefore, 'no download counted');
  } finally {
    await server.stop();
  }
});

test('mirror runs ending together are all recorded', async () => {
  const totals = async () => {
    const report = JSON.parse(
      (await runCliOk(['status', '--json'], { cwd: registry.root })).stdout,
    ) as StatusJson;
    return report.mirror_runs.length;
  };
  const before = await totals();
  // One gets the registry lock; the others are refused at once. Every one is a run to record.
  const runs = await Promise.all(
    Array.from({ length: 8 }, () => runCli(['mirror', MODULE], { cwd: registry.root })),
  );
  assert.ok(runs.some((run) => run.code === 0));
  // A run that could not record itself says so: show why rather than only a count.
  for (const run of runs) assert.doesNotMatch(run.stderr, /could not record/);
  assert.equal(await totals(), Math.min(20, before + 8));
});

test('bytes sent are counted once each, also for pipelined requests', async () => {
  const server = await startServe(registry.root, ['--log-level', 'warn']);
  try {
    const bytesNow = async () =>
      sample(
        await (await fetch(`${server.url}/metrics`)).text(),
        'moonbit_registry_http_response_bytes_total{route="health"}',
      ) ?? 0;
    const before = await bytesNow();
    const { port } = new URL(server.url);
    const received = await new Promise<number>((resolve, reject) => {
      const socket = net.connect(Number(port), '127.0.0.1');
      let bytes = 0;
      socket.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      socket.on('end', () => resolve(bytes));
      socket.on('error', reject);
      const one = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';
      socket.write(`${one.repeat(9)}GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
    let counted = 0;
    for (let i = 0; i < 40 && counted !== received; i++) {
      counted = (await bytesNow()) - before;
      if (counted !== received) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(counted, received, 'the metric grew by what the client received');
  } finally {
    await server.stop();
  }
});

test('log level and format: warn hides request lines; pretty gives one readable line per request', async () => {
  const quiet = await startServe(registry.root, ['--log-level', 'warn', '--log-format', 'json']);
  try {
    await (await fetch(`${quiet.url}/health`)).body?.cancel();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.doesNotMatch(quiet.output(), /"msg":"request"/);
  } finally {
    await quiet.stop();
  }
  const pretty = await startServe(registry.root, ['--log-format', 'pretty']);
  try {
    await (await fetch(`${pretty.url}/health`)).body?.cancel();
    for (let i = 0; i < 50 && !/GET \/health 200/.test(pretty.output()); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.match(pretty.output(), /INFO.*: GET \/health 200 \d+ms client=127\.0\.0\.1/);
  } finally {
    await pretty.stop();
  }
  const wrong = await runCli(['serve', '--log-level', 'loud'], { cwd: registry.root });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /Allowed choices are fatal, error, warn, info, debug, trace, silent/);
});

test('air-gapped transfer: a tar of the folder verifies and serves elsewhere without the upstream; it can feed another registry', async () => {
  const archive = path.join(scratch.path, 'registry.tgz');
  await exec('tar', ['-C', registry.root, '--exclude=data/tmp', '-czf', archive, 'registry.toml', 'data']);
  const isolated = path.join(scratch.path, 'isolated');
  await mkdir(isolated);
  await exec('tar', ['-C', isolated, '-xzf', archive]);
  const asked = upstream.requests.length;

  const verified = await runCliOk(['verify'], { cwd: isolated });
  assert.match(verified.stdout, /no problems/);
  await runCliOk(['source', 'disable', 'up'], { cwd: isolated });
  const server = await startServe(isolated);
  try {
    const home = path.join(scratch.path, 'home-isolated');
    await update(server.url, home);
    const version = latest(await readIndex(home), MODULE) as string;
    const installed = await install(server.url, home, { [MODULE]: version });
    assert.ok(installed.get(MODULE));
    assert.equal(upstream.requests.length, asked, 'the copy never asked the upstream');

    // A registry downstream of this one, as a CI registry fed by the team registry would be.
    const downstream = await tempDir('mr-downstream-');
    try {
      const root = path.join(downstream.path, 'registry');
      await runCliOk(['init', root]);
      await runCliOk([
        '-d',
        root,
        'source',
        'add',
        'team',
        '--url',
        server.url,
        '--type',
        'moonbit-registry',
      ]);
      await runCliOk(['-d', root, 'source', 'default', 'team']);
      await runCliOk(['-d', root, 'source', 'disable', 'mooncakes']);
      const mirrored = JSON.parse((await runCliOk(['-d', root, 'mirror', MODULE, '--json'])).stdout) as {
        failed: number;
        served: { versions: number };
      };
      assert.equal(mirrored.failed, 0);
      // The module and its dependencies: what the client installed, at least; never more than
      // the team registry serves (earlier tests may have stored more there).
      const team = (await (await fetch(`${server.url}/`)).json()) as { index: { versions: number } };
      assert.ok(mirrored.served.versions >= installed.size, `${mirrored.served.versions} served`);
      assert.ok(mirrored.served.versions <= team.index.versions);
    } finally {
      await downstream.remove();
    }
  } finally {
    await server.stop();
  }
});

test('a port already taken: one error line that says so, and a hint', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = blocker.address() as net.AddressInfo;
    const result = await runCli(['serve', '--port', String(port)], { cwd: registry.root });
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      new RegExp(`^error: cannot listen on 127\\.0\\.0\\.1:${port}: another process uses that port$`, 'm'),
    );
    assert.match(result.stderr, /^hint: stop it, or pick another port/m);
  } finally {
    blocker.close();
  }
});
