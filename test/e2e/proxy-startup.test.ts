/**
 * A fresh pull-through registry (`serve --proxy`, no source index fetched yet) must never hand
 * a client an empty index: requests that need the index wait for the first one, or get 503 with
 * Retry-After, and /health says `starting` until then. A proxy that already has a fetched index
 * serves it at once, stale if its upstream is down.
 */
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import {
  copyRegistry,
  isRecord,
  pristineRegistry,
  type RunningServer,
  startServe,
  tempDir,
} from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, type Fixture } from '../support/fixture.js';
import { indexDirOf, readIndex, update } from '../support/moon-client.js';
import { getJson } from '../support/multi-upstream.js';

const SOURCE = 'slowcakes';

let fixture: Fixture;
let upstream: FakeUpstream;
let scratch: { path: string; remove: () => Promise<void> };
/** init + `source add slowcakes` (mooncakes.io disabled): no index fetched, nothing stored. */
let pristine: string;
let copies = 0;
const running = new Set<RunningServer>();

before(async () => {
  fixture = await buildFixture();
  upstream = await FakeUpstream.start({ fixture });
  scratch = await tempDir('mr-proxy-startup-');
  pristine = await pristineRegistry(SOURCE, upstream.url, path.join(scratch.path, 'pristine'));
});

beforeEach(() => {
  upstream.latencyMs = 0;
  upstream.up();
  upstream.clearRecords();
});

after(async () => {
  await Promise.allSettled([...running].map((server) => server.stop()));
  await Promise.allSettled([upstream?.close(), fixture?.cleanup(), scratch?.remove()]);
});

function freshRegistry(settings: Record<string, string> = {}): Promise<string> {
  return copyRegistry(pristine, path.join(scratch.path, `registry-${copies++}`), settings);
}

async function serveProxy(root: string): Promise<RunningServer> {
  const server = await startServe(root, ['--proxy', '--log-format', 'json']);
  running.add(server);
  return server;
}

async function stop(server: RunningServer): Promise<void> {
  await server.stop();
  running.delete(server);
}

async function healthOf(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const { status, body, text } = await getJson(`${url}/health`);
  assert.ok(isRecord(body), `/health is not a JSON object: ${text}`);
  return { status, body };
}

/** Modules in a moon home's index clone (0 for an index without a user/ folder). */
async function modulesIn(home: string): Promise<number> {
  const hasUser = await stat(path.join(indexDirOf(home), 'user')).then(
    () => true,
    () => false,
  );
  return hasUser ? (await readIndex(home)).modules.size : 0;
}

/**
 * `moon update` as a patient CI job does it: on 503 wait and try again (the client is not told
 * anything else). Returns what each attempt got.
 */
async function updateUntilServed(url: string, home: string): Promise<string[]> {
  const attempts: string[] = [];
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await update(url, home, { timeoutMs: 60_000 });
      attempts.push('ok');
      return attempts;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      assert.match(message, /returned error: 503/, `update failed otherwise than with 503: ${message}`);
      attempts.push('503');
      if (Date.now() > deadline) assert.fail(`still 503 after 60 s: ${attempts.join(', ')}`);
      await delay(300);
    }
  }
}

test('a fresh proxy with a slow upstream: updates from the first moment wait and get the whole index, /health goes from starting to ok', async () => {
  const root = await freshRegistry();
  // Every upstream request takes 1 s: the first index fetch (refs + pack) takes 2 s or more.
  upstream.latencyMs = 1000;
  const server = await serveProxy(root);
  try {
    const first = await healthOf(server.url);
    assert.equal(first.status, 503, '/health is not ready before the first index');
    assert.equal(first.body.status, 'starting');
    assert.ok(Array.isArray(first.body.reasons), JSON.stringify(first.body));
    assert.match(String(first.body.reasons), new RegExp(`${SOURCE}: fetching its index for the first time`));

    // Clients started with the server: every one must end with the whole index, none with 0.
    const homes = [0, 1, 2, 3].map((i) => path.join(scratch.path, `slow-home-${i}`));
    const results = await Promise.all(
      homes.map(async (home, i) => {
        await delay(i * 250);
        return updateUntilServed(server.url, home);
      }),
    );
    for (const [i, home] of homes.entries()) {
      assert.deepEqual(results[i], ['ok'], 'within first_index_wait the request waits, without a 503');
      assert.equal(await modulesIn(home), fixture.modules.size, `client ${i} got the whole index`);
    }
    const ready = await healthOf(server.url);
    assert.equal(ready.status, 200);
    assert.equal(ready.body.status, 'ok');
    assert.equal(ready.body.reasons, undefined);
  } finally {
    await stop(server);
  }
});

test('a short first_index_wait: early requests get 503 with Retry-After, then the whole index; never an empty one', async () => {
  const root = await freshRegistry({ 'server.first_index_wait': '500ms' });
  upstream.latencyMs = 1500;
  const server = await serveProxy(root);
  try {
    const archive = await fetch(`${server.url}/user/moonbitlang/x`);
    assert.equal(archive.status, 503, 'module requests that need the index wait too');
    const retryAfter = Number(archive.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${archive.headers.get('retry-after')}`);
    const refs = await fetch(`${server.url}/git/index/info/refs?service=git-upload-pack`);
    assert.equal(refs.status, 503);
    assert.ok(refs.headers.get('retry-after'));
    await refs.body?.cancel();

    const home = path.join(scratch.path, 'short-wait-home');
    const attempts = await updateUntilServed(server.url, home);
    assert.equal(attempts[0], '503', `the first update came before the index: ${attempts.join(', ')}`);
    assert.equal(attempts.at(-1), 'ok');
    assert.equal(await modulesIn(home), fixture.modules.size);
  } finally {
    await stop(server);
  }
});

test('the first sync fails: /health says why, the server retries, then serves; a restart serves the fetched index at once, stale when the upstream is down', async () => {
  const root = await freshRegistry({ 'server.first_index_wait': '0s' });
  upstream.down();
  const server = await serveProxy(root);
  let restarted: RunningServer | undefined;
  try {
    let failing: Record<string, unknown> | undefined;
    for (let i = 0; i < 100 && !failing; i++) {
      const h = await healthOf(server.url);
      assert.equal(h.status, 503, JSON.stringify(h.body));
      if (/index fetch failed/.test(String(h.body.reasons))) failing = h.body;
      else await delay(100);
    }
    assert.ok(failing, '/health names the failed index fetch');
    assert.equal(failing.status, 'starting');
    assert.match(String(failing.reasons), new RegExp(`^${SOURCE}: index fetch failed`));
    const refused = await fetch(`${server.url}/git/index/info/refs?service=git-upload-pack`);
    assert.equal(refused.status, 503);
    await refused.body?.cancel();

    // Attempts go on by themselves (no auto_sync here): the upstream comes back, the index follows.
    const before = upstream.requests.length;
    upstream.up();
    const home = path.join(scratch.path, 'retry-home');
    await updateUntilServed(server.url, home);
    assert.ok(upstream.requests.length > before, 'the server asked the upstream again by itself');
    assert.equal(await modulesIn(home), fixture.modules.size);
    assert.equal((await healthOf(server.url)).status, 200);
    assert.match(server.output(), /no source index fetched yet: next attempt in \d+ s/);
    await stop(server);

    // A restart with the upstream down: the index fetched before is served at once.
    upstream.down();
    restarted = await serveProxy(root);
    const h = await healthOf(restarted.url);
    assert.equal(h.status, 200, `a proxy with a fetched index is ready at once: ${JSON.stringify(h.body)}`);
    const again = path.join(scratch.path, 'restart-home');
    await update(restarted.url, again);
    assert.equal(await modulesIn(again), fixture.modules.size, 'the stale index is served whole');
  } finally {
    await Promise.allSettled([stop(server), restarted ? stop(restarted) : undefined]);
  }
});
