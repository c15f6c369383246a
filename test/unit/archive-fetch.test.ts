/**
 * fetchArchive with health records: how upstream failures reach the circuit breaker. One broken
 * archive must not shut a healthy source; a host that does not answer must be skipped fast.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { SourceSchema } from '../../src/config/schema.js';
import { renameInto } from '../../src/fs/move-file.js';
import { ArchiveFetchError, fetchArchive } from '../../src/upstream/archive-fetch.js';
import { createSourceAgents } from '../../src/upstream/http-agent.js';
import { SourceHealth } from '../../src/upstream/source-health.js';
import { UpstreamSource } from '../../src/upstream/upstream-source.js';

const GOOD = Buffer.from('PK\u0003\u0004 good archive');
const GOOD_SUM = createHash('sha256').update(GOOD).digest('hex');

let server: Server;
let dir: string;
let requests: string[] = [];

function upstreamAt(url: string): UpstreamSource {
  const config = SourceSchema.parse({ name: 'up', url, index_url: `${url}/git/index` });
  return new UpstreamSource(config, join(dir, 'index.git'), { connectMs: 1000, readMs: 2000 });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mr-fetch-'));
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (req.url?.includes('broken')) res.writeHead(500).end('boom');
    else if (req.url?.includes('missing')) res.writeHead(404).end();
    else res.writeHead(200, { 'content-length': GOOD.length }).end(GOOD);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

async function attempt(upstream: UpstreamSource, health: SourceHealth, module: string, version = '1.0.0') {
  const agents = createSourceAgents(4);
  try {
    return await fetchArchive(
      {
        module,
        version,
        checksum: GOOD_SUM,
        keep: (file) => renameInto(file, join(dir, 'store', module, `${version}.zip`)),
      },
      {
        sources: [upstream],
        tmpDir: dir,
        dispatcherFor: agents.dispatcherFor,
        retries: 2,
        health: () => health,
      },
    );
  } finally {
    await agents.close();
  }
}

test('one archive that keeps failing does not shut the source; its retries count once', async () => {
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const upstream = upstreamAt(url);
  const health = new SourceHealth('up', { threshold: 3, cooldownMs: 60_000, maxCooldownMs: 60_000 });
  requests = [];
  for (let i = 0; i < 2; i++) {
    await assert.rejects(attempt(upstream, health, 'o/broken'), (error: unknown) => {
      assert.ok(error instanceof ArchiveFetchError);
      assert.equal(error.kind, 'failed');
      assert.match(error.message, /answered HTTP 500/);
      return true;
    });
  }
  assert.equal(requests.length, 6, 'each request tried 1 + 2 retries');
  assert.equal(health.breaker.state, 'closed', 'two failed requests stay under the threshold of 3');
  assert.equal((await attempt(upstream, health, 'o/fine')).bytes, GOOD.length);
  assert.equal(health.report().state, 'ok');
});

test('a 404 is not a failure of the source, and says not-found', async () => {
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const health = new SourceHealth('up', { threshold: 1, cooldownMs: 60_000, maxCooldownMs: 60_000 });
  await assert.rejects(attempt(upstreamAt(url), health, 'o/missing'), (error: unknown) => {
    assert.ok(error instanceof ArchiveFetchError);
    assert.equal(error.kind, 'not-found');
    return true;
  });
  assert.equal(health.breaker.state, 'closed');
});

test('a host that refuses connections opens the circuit within one request; then nothing is sent', async () => {
  // A port nobody listens on: bind one, remember it, close it.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const deadPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const health = new SourceHealth('up', { threshold: 3, cooldownMs: 60_000, maxCooldownMs: 60_000 });
  const upstream = upstreamAt(`http://127.0.0.1:${deadPort}`);
  await assert.rejects(attempt(upstream, health, 'o/any'), ArchiveFetchError);
  assert.equal(health.breaker.state, 'open', 'three refused attempts: open');
  assert.equal(health.report().state, 'failing');
  // "unavailable" means every source was skipped: no attempt, no backoff.
  await assert.rejects(attempt(upstream, health, 'o/other'), (error: unknown) => {
    assert.ok(error instanceof ArchiveFetchError);
    assert.equal(error.kind, 'unavailable');
    assert.ok(error.retryAt !== undefined && error.retryAt > Date.now());
    assert.match(error.message, /source "up" is unavailable \(failing since/);
    return true;
  });
});
