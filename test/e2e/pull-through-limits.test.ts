/**
 * Pull-through under a hanging or trickling upstream: a miss is answered with 504 once the
 * source's read timeout passes (naming the source, without its URL), and shutting the server
 * down does not wait for a download nobody will finish.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { initRegistryWithSource, type RunningServer, runCliOk, startServe } from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, checksumIn, type Fixture, sha256Hex } from '../support/fixture.js';
import { archiveUrl } from '../support/moon-client.js';
import { setSourceKey } from '../support/multi-upstream.js';

const MODULE = 'moonbitlang/regexp';

let fixture: Fixture;
let upstream: FakeUpstream;
let registry: { root: string; remove: () => Promise<void> };
let server: RunningServer | undefined;

before(async () => {
  fixture = await buildFixture();
  upstream = await FakeUpstream.start({ fixture });
  registry = await initRegistryWithSource('up', upstream.url);
});

/** `config KEY VALUE` in the registry (serve reads it at start). */
async function setConfig(key: string, value: string): Promise<void> {
  await runCliOk(['config', key, value], { cwd: registry.root });
}

/** Sets this source's read timeout (serve reads it at start). */
async function setReadTimeout(value: string): Promise<void> {
  const config = path.join(registry.root, 'registry.toml');
  await writeFile(config, setSourceKey(await readFile(config, 'utf8'), 'up', 'read_timeout', value));
}

after(async () => {
  await server?.stop();
  await upstream?.stop();
  await registry?.remove();
  await fixture?.cleanup();
});

/**
 * Waits until the server serves an index listing MODULE and its startup sync has reported (so
 * no sync runs alongside the test). The report alone is not enough: a failed first sync reports
 * too, and a fresh proxy without an index holds a request for first_index_wait, then answers 503.
 * Returns what the served index says of MODULE.
 */
async function synced(url: string): Promise<ModuleVersions> {
  for (let i = 0; i < 600; i++) {
    const res = await fetch(`${url}/health`);
    const health = (await res.json()) as { status?: string; sync?: { last_run: unknown } };
    if (res.status === 200 && health.status === 'ok' && health.sync?.last_run) {
      const listing = await fetch(`${url}/user/${MODULE}`);
      assert.equal(listing.status, 200, `the served index lists ${MODULE}`);
      return (await listing.json()) as ModuleVersions;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail('no index served, or no sync report, within 60 s');
}

type ModuleVersions = { versions: { version: string; stored: boolean }[] };

/** The served line of one version of MODULE: listed, and not stored yet (a pull-through miss). */
function assertMiss(listing: ModuleVersions, version: string): void {
  const line = listing.versions.find((entry) => entry.version === version);
  assert.ok(line, `${MODULE}@${version} is served`);
  assert.equal(line.stored, false, `${MODULE}@${version} is not stored yet`);
}

function versionsOf(module: string): string[] {
  return [...(fixture.modules.get(module)?.keys() ?? [])];
}

test('an upstream that never answers: 504 naming the source, no upstream URL', async () => {
  // The first index is fetched under the default read timeout. With 1 s, a busy machine can fail
  // the git fetch (1 s without progress) over and over; the archive request then waits for a first
  // index and gets 503, never meeting the hang under test. A restarted server serves the index it
  // fetched before at once, whatever its own startup sync does.
  server = await startServe(registry.root, ['--proxy']);
  await synced(server.url);
  await server.stop();
  await setReadTimeout('1s');
  server = await startServe(registry.root, ['--proxy']);
  const version = versionsOf(MODULE)[0] as string;
  assertMiss(await synced(server.url), version);
  upstream.faults.set(`${MODULE}@${version}`, 'hang');
  const res = await fetch(archiveUrl(server.url, MODULE, version));
  assert.equal(res.status, 504);
  const body = (await res.json()) as { error: string };
  assert.match(body.error, /source "up" timed out/);
  assert.ok(!body.error.includes(upstream.url), `the upstream URL stays in the log: ${body.error}`);
  upstream.faults.clear();
});

test('SIGTERM during a trickling download: the server exits without waiting for it', async () => {
  await server?.stop();
  // Longer than the test: only the shutdown may end this download.
  await setReadTimeout('10m');
  await setConfig('server.shutdown_timeout', '2s');
  server = await startServe(registry.root, ['--proxy']);
  const version = versionsOf(MODULE)[1] as string;
  assertMiss(await synced(server.url), version);
  // Half the archive, then nothing for a minute, within the read timeout.
  upstream.stallMs = 60_000;
  upstream.faults.set(`${MODULE}@${version}`, 'stall');
  const client = fetch(archiveUrl(server.url, MODULE, version)).then((res) => res.arrayBuffer());
  client.catch(() => undefined);
  for (let i = 0; i < 100 && upstream.stalls.length === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(upstream.stalls.length, 1, 'the download is under way');
  const started = performance.now();
  await server.stop();
  const seconds = (performance.now() - started) / 1000;
  // Clients get 2 s (shutdown_timeout), a running sync 5 s, downloads 2 s more: well under the
  // minute of the stall.
  assert.ok(seconds < 15, `serve took ${seconds.toFixed(1)} s to exit`);
  assert.equal(server.process.exitCode, 0);
  await assert.rejects(client, 'the client saw the download cut');
  const stored = path.join(registry.root, 'data', 'packages', ...MODULE.split('/'), version);
  assert.ok(
    !(await readFile(path.join(stored, `${checksumIn(fixture, MODULE, version)}.zip`)).catch(() => false)),
  );
  server = undefined;
  upstream.faults.clear();
  upstream.releaseStalls();
});

test('SIGTERM: no new connections at once, the response in flight still completes, exit 0', async () => {
  await server?.stop();
  await setConfig('server.shutdown_timeout', '20s');
  server = await startServe(registry.root, ['--proxy']);
  const version = versionsOf(MODULE)[2] as string;
  assertMiss(await synced(server.url), version);
  upstream.stallMs = 60_000;
  upstream.clearRecords(); // the stalls recorded by the test before
  upstream.faults.set(`${MODULE}@${version}`, 'stall');
  // In flight: the headers and the first half of the body are here, the rest is held upstream.
  const response = await fetch(archiveUrl(server.url, MODULE, version));
  assert.equal(response.status, 200);
  const client = response
    .arrayBuffer()
    .then((body) => ({ status: response.status, body: Buffer.from(body) }));
  client.catch(() => undefined); // awaited below; a failure is reported there
  assert.deepEqual(
    upstream.stalls.map((stall) => stall.key),
    [`${MODULE}@${version}`],
    'the download is under way',
  );
  const exited = new Promise<number | null>((resolve) =>
    server?.process.once('exit', (code) => resolve(code)),
  );
  const stopped = performance.now();
  server.process.kill('SIGTERM');
  // The listening socket closes right away: a new client is refused, not queued.
  let refused = false;
  for (let i = 0; i < 40 && !refused; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    refused = await fetch(`${server.url}/health`).then(
      async (res) => {
        await res.body?.cancel();
        return false;
      },
      () => true,
    );
  }
  assert.ok(refused, 'new connections are refused during shutdown');
  // Longer than the fixed 2 s grace serve used to give: only shutdown_timeout may cut it.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.equal(server.process.exitCode, null, 'still running for the response in flight');
  upstream.releaseStalls();
  const { status, body } = await client;
  assert.equal(status, 200);
  assert.equal(sha256Hex(body), checksumIn(fixture, MODULE, version), 'the whole, verified archive');
  assert.equal(await exited, 0);
  const seconds = (performance.now() - stopped) / 1000;
  assert.ok(seconds < 15, `exited ${seconds.toFixed(1)} s after SIGTERM, not at the 20 s limit`);
  // The client had the last byte before the archive was fsynced and renamed: shutdown waited.
  const stored = path.join(registry.root, 'data', 'packages', ...MODULE.split('/'), version);
  const archive = await readFile(path.join(stored, `${checksumIn(fixture, MODULE, version)}.zip`));
  assert.equal(sha256Hex(archive), checksumIn(fixture, MODULE, version), 'stored before exit');
  server = undefined;
  upstream.faults.clear();
});
