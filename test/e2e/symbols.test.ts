/**
 * symbols.zip (PROTOCOL.md 5): mirrored from each source with its ETag, refreshed with
 * If-None-Match by `mirror` and by a sync, served at /symbols.zip with our own ETag and 304,
 * fetched on first request in pull-through mode (one upstream fetch however many ask), the
 * highest-priority source's copy served, 404 when no source has one, size-capped, and behind
 * the access rules like every read route.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { zipSync } from 'fflate';
import {
  copyRegistry,
  pristineRegistry,
  type RunningServer,
  runCli,
  runCliOk,
  startServe,
  tempDir,
} from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, type Fixture } from '../support/fixture.js';
import { symbolsDirOf, update } from '../support/moon-client.js';

const MODULE = 'moonbitlang/x';
const ADMIN_TOKEN = 'symbols-admin-token';

/** A symbols.zip as mooncakes.io ships it: one folder per module with its package interfaces. */
function symbolsZip(marker: string, padding = 0): Buffer {
  return Buffer.from(
    zipSync({
      [`${MODULE}/lib.mbti`]: new TextEncoder().encode(`package "${MODULE}" // ${marker}\n`),
      // Random bytes do not compress: the zip grows by as much.
      ...(padding > 0 ? { [`${MODULE}/padding.bin`]: new Uint8Array(randomBytes(padding)) } : {}),
    }),
  );
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const symbolsRequests = (upstream: FakeUpstream) => upstream.requests.filter((r) => r.url === '/symbols.zip');

let fixture: Fixture;
let upstream: FakeUpstream;
let scratch: { path: string; remove: () => Promise<void> };
let pristine: string;
const cleanups: Array<() => Promise<void>> = [];

before(async () => {
  fixture = await buildFixture();
  upstream = await FakeUpstream.start({ fixture, symbols: symbolsZip('first') });
  scratch = await tempDir('mr-symbols-');
  pristine = await pristineRegistry('up', upstream.url, path.join(scratch.path, 'pristine'));
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await upstream?.stop();
  await scratch?.remove();
  await fixture?.cleanup();
});

let copies = 0;
async function freshRegistry(settings: Record<string, string> = {}): Promise<string> {
  copies++;
  return copyRegistry(pristine, path.join(scratch.path, `registry-${copies}`), settings);
}

async function serve(
  root: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<RunningServer> {
  const server = await startServe(root, args, { env });
  cleanups.push(() => server.stop());
  return server;
}

async function adminSync(server: RunningServer): Promise<void> {
  const res = await fetch(`${server.url}/admin/sync`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  assert.equal(res.status, 200, await res.text());
}

async function getSymbols(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; etag: string | null; bytes: Buffer }> {
  const res = await fetch(`${url}/symbols.zip`, { headers });
  return { status: res.status, etag: res.headers.get('etag'), bytes: Buffer.from(await res.arrayBuffer()) };
}

test('mirror stores symbols.zip; moon update gets it with an ETag, then 304; a sync revalidates with If-None-Match and picks up a change', async () => {
  const first = upstream.symbols as Buffer;
  const root = await freshRegistry({ 'server.admin_token': ADMIN_TOKEN });
  const mirrored = await runCliOk(['mirror', MODULE, '--json'], { cwd: root });
  const summary = JSON.parse(mirrored.stdout) as { symbols: Array<{ source: string; status: string }> };
  assert.deepEqual(
    summary.symbols.map((s) => [s.source, s.status]),
    [['up', 'updated']],
  );
  assert.deepEqual(await readFile(path.join(root, 'data', 'symbols', 'up', 'symbols.zip')), first);

  const server = await serve(root);
  const home = path.join(scratch.path, 'home-mirror');
  const one = await update(server.url, home);
  assert.equal(one.symbols.status, 200, one.symbols.warning);
  assert.equal(one.symbols.etag, `"${sha256(first)}"`);
  assert.match(await readFile(path.join(symbolsDirOf(home), MODULE, 'lib.mbti'), 'utf8'), /first/);
  const two = await update(server.url, home);
  assert.equal(two.symbols.sent, one.symbols.etag, 'the second update sends the ETag');
  assert.equal(two.symbols.status, 304);

  // A sync asks the upstream with the ETag it answered with: 304, nothing changes.
  upstream.clearRecords();
  await adminSync(server);
  const asked = symbolsRequests(upstream);
  assert.equal(asked.length, 1);
  assert.equal(asked[0]?.headers['if-none-match'], `"${sha256(first)}"`);
  assert.equal(asked[0]?.status, 304);
  assert.equal((await update(server.url, home)).symbols.status, 304);

  // The upstream's file changes: the next sync takes it, and moon gets it with a new ETag.
  const second = symbolsZip('second');
  upstream.symbols = second;
  await adminSync(server);
  const three = await update(server.url, home);
  assert.equal(three.symbols.status, 200, three.symbols.warning);
  assert.equal(three.symbols.etag, `"${sha256(second)}"`);
  assert.match(await readFile(path.join(symbolsDirOf(home), MODULE, 'lib.mbti'), 'utf8'), /second/);

  // An unreachable upstream keeps the copy.
  upstream.down();
  try {
    await adminSync(server);
  } finally {
    upstream.up();
  }
  const kept = await getSymbols(server.url);
  assert.equal(kept.status, 200);
  assert.deepEqual(kept.bytes, second);
  upstream.symbols = first;
});

test('pull-through: nothing is fetched before a client asks; concurrent first requests share one upstream fetch; then no fetch within the sync interval', async () => {
  const root = await freshRegistry();
  upstream.clearRecords();
  const server = await serve(root, ['--proxy']);
  // Let the first index sync finish: it must not have asked for symbols.
  for (let i = 0; i < 100 && (await fetch(`${server.url}/health`)).status !== 200; i++) await delay(100);
  assert.deepEqual(symbolsRequests(upstream), [], 'symbols fetched before any client asked');

  upstream.latencyMs = 300; // the requests below all arrive while the fetch is in flight
  try {
    const answers = await Promise.all(Array.from({ length: 6 }, () => getSymbols(server.url)));
    for (const answer of answers) {
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.bytes, upstream.symbols);
      assert.equal(answer.etag, `"${sha256(upstream.symbols as Buffer)}"`);
    }
  } finally {
    upstream.latencyMs = 0;
  }
  assert.equal(symbolsRequests(upstream).length, 1, 'one upstream fetch for six first requests');

  const home = path.join(scratch.path, 'home-proxy');
  const first = await update(server.url, home);
  assert.equal(first.symbols.status, 200, first.symbols.warning);
  assert.equal((await update(server.url, home)).symbols.status, 304);
  assert.equal(symbolsRequests(upstream).length, 1, 'revalidated at most once per sync interval');
});

test('pull-through revalidates after the sync interval with If-None-Match', async () => {
  const root = await freshRegistry({ 'mirror.sync_interval': '1s' });
  const server = await serve(root, ['--proxy']);
  assert.equal((await getSymbols(server.url)).status, 200);
  upstream.clearRecords();
  await delay(1200);
  await getSymbols(server.url); // served from the copy; the revalidation runs beside it
  for (let i = 0; i < 50 && symbolsRequests(upstream)[0]?.status === undefined; i++) await delay(100);
  const asked = symbolsRequests(upstream);
  assert.equal(asked.length, 1);
  assert.equal(asked[0]?.headers['if-none-match'], `"${sha256(upstream.symbols as Buffer)}"`);
  assert.equal(asked[0]?.status, 304);
});

test('two sources: the highest-priority one that has symbols is served; one that drops them gives way', async () => {
  const other = await FakeUpstream.start({ fixture, symbols: symbolsZip('preferred') });
  cleanups.push(() => other.stop());
  const root = await freshRegistry();
  await runCliOk(
    ['source', 'add', 'two', '--url', other.url, '--index-url', other.indexUrl, '--priority', '10'],
    { cwd: root },
  );
  await runCliOk(['mirror', MODULE, '-q'], { cwd: root });
  let server = await serve(root);
  let served = await getSymbols(server.url);
  assert.equal(served.status, 200);
  assert.deepEqual(served.bytes, other.symbols, 'priority 10 wins over 100');

  // The preferred source has none any more (404): its copy goes, the other source's is served.
  other.symbols = undefined;
  const again = await runCliOk(['mirror', MODULE, '--json'], { cwd: root });
  const statuses = (JSON.parse(again.stdout) as { symbols: Array<{ source: string; status: string }> })
    .symbols;
  assert.deepEqual(statuses.map((s) => [s.source, s.status]).sort(), [
    ['two', 'absent'],
    ['up', 'unchanged'],
  ]);
  await server.stop();
  server = await serve(root);
  served = await getSymbols(server.url);
  assert.equal(served.status, 200);
  assert.deepEqual(served.bytes, upstream.symbols);
});

test('an upstream without symbols.zip: 404, and moon only warns', async () => {
  const bare = await FakeUpstream.start({ fixture });
  cleanups.push(() => bare.stop());
  const registry = await pristineRegistry('bare', bare.url, path.join(scratch.path, 'bare'));
  const mirrored = await runCliOk(['mirror', MODULE], { cwd: registry });
  assert.match(
    mirrored.stdout + mirrored.stderr,
    /symbols\.zip of source "bare": the source has none \(404\)/,
  );
  const server = await serve(registry);
  assert.equal((await getSymbols(server.url)).status, 404);
  const home = path.join(scratch.path, 'home-bare');
  const result = await update(server.url, home);
  assert.equal(result.action, 'clone');
  assert.equal(result.symbols.status, 404);
  assert.match(result.symbols.warning ?? '', /failed to update symbols/);

  // Pull-through: the upstream's 404 is a 404 too.
  const proxy = await serve(registry, ['--proxy']);
  assert.equal((await getSymbols(proxy.url)).status, 404);
});

test('a symbols.zip over [mirror] max_archive_size, or not a zip, is refused and the old copy kept', async () => {
  const root = await freshRegistry();
  await runCliOk(['mirror', MODULE, '-q'], { cwd: root });
  const stored = path.join(root, 'data', 'symbols', 'up', 'symbols.zip');
  const old = await readFile(stored);
  await runCliOk(['config', 'mirror.max_archive_size', '4096'], { cwd: root });
  const saved = upstream.symbols;
  try {
    upstream.symbols = symbolsZip('huge', 8192);
    const big = await runCli(['mirror', MODULE], { cwd: root });
    assert.equal(big.code, 0, big.stderr);
    assert.match(
      big.stderr,
      /symbols\.zip from up: .* over the limit of 4096 \(\[mirror\] max_archive_size\); not kept/,
    );
    assert.deepEqual(await readFile(stored), old);

    upstream.symbols = Buffer.from('<html>maintenance</html>');
    const html = await runCli(['mirror', MODULE], { cwd: root });
    assert.match(html.stderr, /not a zip/);
    assert.deepEqual(await readFile(stored), old);
  } finally {
    upstream.symbols = saved;
  }
  const server = await serve(root);
  assert.deepEqual((await getSymbols(server.url)).bytes, old);
});

test('credentials mode: /symbols.zip is 401 without a token, 200 with one', async () => {
  const root = await freshRegistry();
  await runCliOk(['mirror', MODULE, '-q'], { cwd: root });
  const token = (await runCliOk(['token', 'add', 'ci'], { cwd: root })).stdout.trim();
  await runCliOk(['config', 'server.access.mode', 'credentials'], { cwd: root });
  const server = await serve(root);
  const denied = await getSymbols(server.url);
  assert.equal(denied.status, 401);
  const allowed = await getSymbols(server.url, { authorization: `Bearer ${token}` });
  assert.equal(allowed.status, 200);
  assert.deepEqual(allowed.bytes, upstream.symbols);
  const notModified = await getSymbols(server.url, {
    authorization: `Bearer ${token}`,
    'if-none-match': allowed.etag as string,
  });
  assert.equal(notModified.status, 304);
  const home = path.join(scratch.path, 'home-private');
  const result = await update(server.url, home, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(result.symbols.status, 200, result.symbols.warning);
});

test('verify finds a damaged symbols.zip; --repair deletes it and the next mirror fetches it whole', async () => {
  const root = await freshRegistry();
  await runCliOk(['mirror', MODULE, '-q'], { cwd: root });
  assert.match((await runCliOk(['verify'], { cwd: root })).stdout, /no problems/);
  const stored = path.join(root, 'data', 'symbols', 'up', 'symbols.zip');
  const good = await readFile(stored);
  await writeFile(stored, good.subarray(0, good.length - 30)); // the central directory is cut
  const found = await runCli(['verify'], { cwd: root });
  assert.equal(found.code, 1);
  assert.match(
    found.stdout,
    /^corrupt-symbols +data\/symbols\/up\/symbols\.zip: symbols\.zip of source "up": /m,
  );

  const repaired = await runCli(['verify', '--repair'], { cwd: root });
  assert.equal(repaired.code, 0, repaired.stdout + repaired.stderr);
  assert.match(repaired.stdout, /repaired corrupt-symbols data\/symbols\/up\/symbols\.zip: deleted/);
  upstream.clearRecords();
  await runCliOk(['mirror', MODULE, '-q'], { cwd: root });
  const asked = symbolsRequests(upstream);
  assert.equal(asked.length, 1);
  assert.equal(asked[0]?.headers['if-none-match'], undefined, 'no ETag for a copy it does not hold');
  assert.deepEqual(await readFile(stored), upstream.symbols);
});
