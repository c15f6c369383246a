/**
 * `serve` in mirror mode with `[mirror] auto_sync`: the registry keeps the modules it serves
 * current on its own, downloading new versions (and what they need) before listing them, and
 * still lists nothing it does not store. Also POST /admin/sync in mirror mode.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { initRegistryWithSource, type RunningServer, runCliOk, startServe, tempDir } from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, type Fixture } from '../support/fixture.js';
import { git } from '../support/git.js';
import { download, readIndex, update } from '../support/moon-client.js';

const MIRRORED = 'moonbitlang/x';
/** Not mirrored: a new version of it must not be fetched or listed. */
const OTHER = 'moonbitlang/quickcheck';
const ADMIN_TOKEN = 'sync-token-for-tests';
/** Mirrored with its dependencies (moonbitlang/parser, Yoorkin/... at the versions it needs). */
const WITH_DEPS = 'moonbitlang/formatter';

/** module -> number of versions the served index (data/index) lists, read with git. */
async function servedVersionCounts(root: string): Promise<Map<string, number>> {
  const gitDir = path.join(root, 'data', 'index');
  const files = (await git(['--git-dir', gitDir, 'ls-tree', '-r', '--name-only', 'main'])).split('\n');
  const counts = new Map<string, number>();
  for (const file of files.filter((f) => f.endsWith('.index'))) {
    const text = await git(['--git-dir', gitDir, 'show', `main:${file}`]);
    counts.set(file.slice('user/'.length, -'.index'.length), text.split('\n').filter(Boolean).length);
  }
  return counts;
}

let servedBefore: Map<string, number>;

let fixture: Fixture;
let upstream: FakeUpstream;
let registry: { root: string; remove: () => Promise<void> };
let server: RunningServer;

before(async () => {
  fixture = await buildFixture();
  upstream = await FakeUpstream.start({ fixture });
  registry = await initRegistryWithSource('up', upstream.url);
  const { root } = registry;
  await runCliOk(['mirror', MIRRORED, '--strict', '-q'], { cwd: root });
  // Its dependencies are mirrored at the versions it needs, not all their versions.
  await runCliOk(['mirror', WITH_DEPS, '-q'], { cwd: root });
  servedBefore = await servedVersionCounts(root);
  await runCliOk(['config', 'mirror.auto_sync', 'true'], { cwd: root });
  await runCliOk(['config', 'mirror.sync_interval', '1s'], { cwd: root });
  await runCliOk(['config', 'server.admin_token', '${TEST_ADMIN_TOKEN}'], { cwd: root });
  server = await startServe(root, [], { env: { TEST_ADMIN_TOKEN: ADMIN_TOKEN } });
});

after(async () => {
  await server?.stop();
  await upstream?.stop();
  await registry?.remove();
  await fixture?.cleanup();
});

/** Updates a moon home until `accept` holds for its index, or fails after ~20 s. */
async function updateUntil(home: string, accept: (versions: Map<string, unknown> | undefined) => boolean) {
  for (let i = 0; i < 80; i++) {
    await update(server.url, home);
    const index = await readIndex(home);
    if (accept(index.modules.get(MIRRORED))) return index;
    await delay(250);
  }
  assert.fail(`the index did not change as expected:\n${server.output().slice(-2000)}`);
}

test('a sync with nothing new upstream changes nothing: dependencies stay at the versions needed', async () => {
  assert.ok(servedBefore.size > 2, 'the mirror served some dependencies');
  const res = await fetch(`${server.url}/admin/sync`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await servedVersionCounts(registry.root), servedBefore);
});

test('a new upstream version of a served module is mirrored, then listed; others stay out', async () => {
  const home = await tempDir('mr-sync-home-');
  try {
    await update(server.url, home.path);
    const before = await readIndex(home.path);
    assert.equal(before.modules.has(OTHER), false, 'only the mirrored module is served');
    const latest = [...(before.modules.get(MIRRORED)?.keys() ?? [])].length;
    assert.ok(latest > 0);

    const added = await fixture.addVersion(MIRRORED, '99.0.0');
    await fixture.addVersion(OTHER, '99.0.0');
    const index = await updateUntil(home.path, (versions) => versions?.has('99.0.0') === true);

    const archive = path.join(registry.root, 'data', 'packages', ...MIRRORED.split('/'), '99.0.0');
    assert.ok(existsSync(path.join(archive, `${added.checksum}.zip`)), 'stored before it was listed');
    await download(server.url, MIRRORED, '99.0.0', added.checksum);
    assert.equal(index.modules.has(OTHER), false, 'a module nobody mirrored is not pulled in');
    // Every listed version can be downloaded: the offline promise of mirror mode holds.
    for (const [version, entry] of index.modules.get(MIRRORED) ?? []) {
      await download(server.url, MIRRORED, version, entry.checksum ?? '');
    }
  } finally {
    await home.remove();
  }
});

test('POST /admin/sync: 401 without the token, a report with it', async () => {
  const denied = await fetch(`${server.url}/admin/sync`, { method: 'POST' });
  assert.equal(denied.status, 401);
  const wrong = await fetch(`${server.url}/admin/sync`, {
    method: 'POST',
    headers: { authorization: 'Bearer not-the-token' },
  });
  assert.equal(wrong.status, 401);
  const added = await fixture.addVersion(MIRRORED, '99.1.0');
  const res = await fetch(`${server.url}/admin/sync`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(res.status, 200);
  const report = (await res.json()) as {
    sources: Array<{ name: string; result: string }>;
    index?: { commit: string };
    mirrored?: { downloaded: number; failed: number };
  };
  assert.deepEqual(
    report.sources.map((s) => [s.name, s.result]),
    [['up', 'fetched']],
  );
  assert.equal(report.mirrored?.failed, 0);
  // The scheduled sync may have taken the new version first; either way it is served now.
  const module = (await (await fetch(`${server.url}/user/${MIRRORED}`)).json()) as {
    versions: Array<{ version: string; checksum: string; stored: boolean }>;
  };
  const listed = module.versions.find((v) => v.version === '99.1.0');
  assert.deepEqual(listed && { checksum: listed.checksum, stored: listed.stored }, {
    checksum: added.checksum,
    stored: true,
  });
  assert.ok(!server.output().includes(ADMIN_TOKEN), 'the token is never logged');
});

test('/health in mirror mode with auto_sync: the schedule and the source', async () => {
  const health = (await (await fetch(`${server.url}/health`)).json()) as {
    mode: string;
    sync: { auto: boolean; interval_seconds: number; last_run: unknown };
    sources: Array<{ name: string; state: string; last_sync: string | null }>;
  };
  assert.equal(health.mode, 'mirror');
  assert.equal(health.sync.auto, true);
  assert.equal(health.sync.interval_seconds, 1);
  assert.notEqual(health.sync.last_run, null);
  assert.equal(health.sources[0]?.name, 'up');
  assert.equal(health.sources[0]?.state, 'ok');
  assert.notEqual(health.sources[0]?.last_sync, null);
});
