/**
 * Several `serve --proxy` replicas behind a round-robin balancer, sharing an S3 bucket (s3rver)
 * and a Redis server (Debian's redis-server), end to end: the real CLI as child processes, a fake
 * mooncakes.io, and the moon-like client. One history, one download per archive across the
 * replicas, publishes seen everywhere, and what happens when a replica, Redis or the bucket dies.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, cp } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import {
  cliPath,
  pristineRegistry,
  type RunningServer,
  runCliOk,
  startServe,
  tempDir,
} from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, checksumIn, type Fixture, makeArchive, sha256Hex } from '../support/fixture.js';
import { git as runGit } from '../support/git.js';
import { download, install, latest, readIndex, resolve, update } from '../support/moon-client.js';
import { getJson } from '../support/multi-upstream.js';
import { type RunningRedisServer, startRedisServer } from '../support/redis-server.js';
import { type RoundRobinProxy, startRoundRobinProxy } from '../support/round-robin-proxy.js';
import { type RunningS3Server, S3_TEST_ENV, startS3Server, storageToml } from '../support/s3-server.js';

const SOURCE = 'fakecakes';
const X = 'moonbitlang/x';
const FORMATTER = 'moonbitlang/formatter';
/** Ten versions without dependencies: one per test that needs an archive nobody asked for yet. */
const REGEXP = 'moonbitlang/regexp';
const APP = 'company/lib';

let fixture: Fixture;
let upstream: FakeUpstream;
let s3: RunningS3Server;
let redis: RunningRedisServer;
let scratch: { path: string; remove: () => Promise<void> };
let balancer: RoundRobinProxy;
let publishToken: string;
/** The replicas' folders; a restarted replica keeps its folder. */
const roots: string[] = [];
const replicas: RunningServer[] = [];
let homes = 0;
let regexpVersions: string[] = [];

/** The S3 key pair reaches serve only through the environment (`${VAR}` in registry.toml). */
const SERVE_ENV = S3_TEST_ENV;

/** git's output, trimmed; commits by a test identity. */
async function git(args: string[]): Promise<string> {
  const identity = {
    GIT_AUTHOR_NAME: 'test',
    GIT_AUTHOR_EMAIL: 'test@localhost',
    GIT_COMMITTER_NAME: 'test',
    GIT_COMMITTER_EMAIL: 'test@localhost',
  };
  return (await runGit(args, { env: identity })).trim();
}

function newHome(): string {
  return path.join(scratch.path, `moon-home-${homes++}`);
}

function hits(module: string, version: string): number {
  return upstream.archiveHits.get(`${module}@${version}`) ?? 0;
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(100);
  }
}

/** `serve --proxy` in replica folder `i`, once its first sync ran. */
async function startReplica(i: number): Promise<RunningServer> {
  const server = await startServe(roots[i] as string, ['--proxy'], { env: SERVE_ENV });
  await waitFor(`replica ${i} to finish its first sync`, async () => {
    const { status, body } = await getJson(`${server.url}/health`);
    return status === 200 && (body as { sync?: { last_run?: unknown } }).sync?.last_run ? true : undefined;
  });
  replicas[i] = server;
  return server;
}

/** A module version as `moon publish` sends it, to one replica. */
async function publish(
  url: string,
  version: string,
): Promise<{ status: number; text: string; checksum: string }> {
  const zip = makeArchive(APP, version, `replicas ${version}`);
  const form = new FormData();
  form.set('token', publishToken);
  form.set('file', new Blob([zip], { type: 'application/zip' }), 'module.zip');
  const res = await fetch(`${url}/api/v0/publish`, { method: 'POST', body: form });
  return { status: res.status, text: await res.text(), checksum: sha256Hex(zip) };
}

/** Every object under packages/ in the bucket, with its sha256. */
async function bucketArchives(): Promise<Array<{ key: string; sha256: string }>> {
  const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'packages/' }));
  const found: Array<{ key: string; sha256: string }> = [];
  for (const object of listed.Contents ?? []) {
    const key = object.Key as string;
    const got = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    const bytes = Buffer.from(
      await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
    );
    found.push({ key, sha256: sha256Hex(bytes) });
  }
  return found;
}

/** Each stored object is whole: its bytes hash to the checksum its key names. */
async function assertNoPartialObject(): Promise<void> {
  for (const { key, sha256 } of await bucketArchives()) {
    assert.equal(
      `${sha256}.zip`,
      key.slice(key.lastIndexOf('/') + 1),
      `${key} holds other bytes than its name says`,
    );
  }
}

before(async () => {
  fixture = await buildFixture();
  upstream = await FakeUpstream.start({ fixture });
  [s3, redis, scratch] = await Promise.all([startS3Server(), startRedisServer(), tempDir('mr-replicas-')]);
  regexpVersions = [...(fixture.modules.get(REGEXP)?.keys() ?? [])];
  assert.ok(regexpVersions.length >= 4, 'fixture precondition: regexp has versions to miss');
  const template = await pristineRegistry(SOURCE, upstream.url, path.join(scratch.path, 'template'));
  const added = await runCliOk(['token', 'add', 'ci', '--publish', 'company/*'], { cwd: template });
  publishToken = added.stdout.trim().split('\n')[0] ?? '';
  assert.match(publishToken, /^mbr_/);
  await appendFile(path.join(template, 'registry.toml'), storageToml(s3, { redisUrl: redis.url }));
  for (let i = 0; i < 3; i++) {
    roots[i] = path.join(scratch.path, `replica-${i}`);
    await cp(template, roots[i] as string, { recursive: true });
  }
  // One after the other: each starts from the history the one before shared.
  for (let i = 0; i < 3; i++) await startReplica(i);
  balancer = await startRoundRobinProxy(() => replicas.map((r) => r.url));
});

after(async () => {
  await balancer?.close();
  await Promise.allSettled(replicas.map((r) => r.stop()));
  upstream?.releaseStalls();
  await Promise.allSettled([
    upstream?.close(),
    s3?.stop(),
    redis?.stop(),
    fixture?.cleanup(),
    scratch?.remove(),
  ]);
});

describe('three replicas behind a round-robin balancer', () => {
  test('moon updates and installs through the balancer while its requests bounce between replicas; one history', async () => {
    const home = newHome();
    assert.equal((await update(balancer.url, home)).action, 'clone');
    const index = await readIndex(home);
    const rootDeps = { [X]: latest(index, X) as string, [FORMATTER]: latest(index, FORMATTER) as string };
    const expected = resolve(index, rootDeps);
    const installed = await install(balancer.url, home, rootDeps); // checksums checked by the client
    assert.deepEqual([...installed.keys()].sort(), [...expected.keys()].sort());
    for (const [module, version] of expected) {
      assert.equal(
        hits(module, version),
        1,
        `${module}@${version}: one upstream download across the replicas`,
      );
    }
    // A pull through the next replicas is a fast-forward of the same history, never a reclone.
    for (let i = 0; i < 3; i++) assert.equal((await update(balancer.url, home)).action, 'pull');
    const used = [...balancer.counts.values()].filter((n) => n > 0).length;
    assert.equal(used, 3, `every replica answered some request: ${JSON.stringify([...balancer.counts])}`);
    // Everything the clients got is in the bucket, whole; no replica kept archives on its disk.
    const stored = await bucketArchives();
    for (const [module, version] of expected) {
      const sum = checksumIn(fixture, module, version);
      assert.ok(
        stored.some((o) => o.key === `packages/${module}/${version}/${sum}.zip` && o.sha256 === sum),
        `${module}@${version} is in the bucket`,
      );
    }
    await assertNoPartialObject();
  });

  test('100 concurrent misses spread over the three replicas make exactly one upstream request', async () => {
    const version = regexpVersions[0] as string;
    const sum = checksumIn(fixture, REGEXP, version);
    // The upstream holds the second half back a while: every request arrives during the download.
    upstream.stallMs = 1500;
    upstream.faults.set(`${REGEXP}@${version}`, 'stall');
    try {
      const answers = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          download((replicas[i % 3] as RunningServer).url, REGEXP, version, sum, { timeoutMs: 60_000 }),
        ),
      );
      assert.equal(answers.length, 100);
    } finally {
      upstream.faults.delete(`${REGEXP}@${version}`);
    }
    assert.equal(hits(REGEXP, version), 1, 'one upstream request for 100 clients on three replicas');
  });

  test('a download that fails is answered alike by every replica that waited for it, after one upstream request', async () => {
    const version = regexpVersions[4] as string;
    upstream.faults.set(`${REGEXP}@${version}`, 'notFound');
    try {
      const answers = await Promise.all(
        Array.from({ length: 30 }, async (_, i) => {
          const res = await fetch(`${(replicas[i % 3] as RunningServer).url}/user/${REGEXP}/${version}.zip`);
          return `${res.status} ${(await res.text()).includes(REGEXP)}`;
        }),
      );
      assert.deepEqual(
        new Set(answers),
        new Set(['502 true']),
        'the same answer, naming the module, everywhere',
      );
    } finally {
      upstream.faults.delete(`${REGEXP}@${version}`);
    }
    assert.equal(hits(REGEXP, version), 1, 'one upstream request for 30 clients on three replicas');
  });

  test('a publish on one replica is served by every replica at once, on one history', async () => {
    const home = newHome();
    assert.equal((await update(balancer.url, home)).action, 'clone');
    const first = await publish((replicas[0] as RunningServer).url, '1.0.0');
    assert.equal(first.status, 200, first.text);
    for (const replica of replicas) {
      // No wait, no sync: the very next request to any replica sees it.
      await download(replica.url, APP, '1.0.0', first.checksum);
      const h = newHome();
      await update(replica.url, h);
      assert.equal((await readIndex(h)).modules.get(APP)?.get('1.0.0')?.checksum, first.checksum);
    }
    const second = await publish((replicas[1] as RunningServer).url, '1.1.0');
    assert.equal(second.status, 200, second.text);
    // The client that cloned before both publishes pulls through each replica in turn: each pull
    // is a fast-forward of the one history, whichever replica answers it.
    for (let i = 0; i < 3; i++) {
      const pulled = await update(balancer.url, home);
      assert.equal(pulled.action, 'pull', pulled.pullError);
      const versions = (await readIndex(home)).modules.get(APP);
      assert.deepEqual([...(versions?.keys() ?? [])].sort(), ['1.0.0', '1.1.0']);
    }
  });

  test("a command in a replica's own folder, while that replica answers index requests, is shared with every replica", async () => {
    const target = replicas[0] as RunningServer;
    let stop = false;
    // Requests that make the replica look at the shared history while the command writes.
    const load = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (!stop) {
          const res = await fetch(`${target.url}/git/index/info/refs?service=git-upload-pack`).catch(
            () => undefined,
          );
          await res?.arrayBuffer();
        }
      }),
    );
    try {
      await runCliOk(['yank', `${APP}@1.0.0`, '--reason', 'replica test'], {
        cwd: roots[0] as string,
        env: SERVE_ENV,
      });
    } finally {
      stop = true;
      await load;
    }
    for (const replica of replicas) {
      const home = newHome();
      await update(replica.url, home);
      const line = (await readIndex(home)).modules.get(APP)?.get('1.0.0');
      assert.equal(line?.fields.yanked, true, `${replica.url} serves the yank`);
    }
  });

  test('a commit that a killed writer never shared is dropped by its replica', async () => {
    const gitDir = path.join(roots[0] as string, 'data', 'proxy-index');
    const head = await git(['--git-dir', gitDir, 'rev-parse', 'main']);
    // What a writer killed between its commit and its share leaves behind.
    const tree = await git(['--git-dir', gitDir, 'rev-parse', 'main^{tree}']);
    const orphan = await git(['--git-dir', gitDir, 'commit-tree', tree, '-p', head, '-m', 'never shared']);
    await git(['--git-dir', gitDir, 'update-ref', 'refs/heads/main', orphan]);
    await waitFor('replica 0 to drop the commit', async () => {
      // An index request makes the replica compare its copy with the shared head.
      await (
        await fetch(`${(replicas[0] as RunningServer).url}/git/index/info/refs?service=git-upload-pack`)
      ).arrayBuffer();
      return (await git(['--git-dir', gitDir, 'rev-parse', 'main'])) === head;
    });
  });

  test('a replica SIGKILLed mid-download leaves no partial object; the others serve the archive', async () => {
    const version = regexpVersions[1] as string;
    const sum = checksumIn(fixture, REGEXP, version);
    upstream.stallMs = 120_000;
    upstream.faults.set(`${REGEXP}@${version}`, 'stall');
    const victim = replicas[2] as RunningServer;
    const cut = download(victim.url, REGEXP, version, sum, { timeoutMs: 60_000 }).then(
      () => 'completed',
      () => 'cut',
    );
    await waitFor('the download to be half done', async () =>
      upstream.stalls.some((s) => s.key === `${REGEXP}@${version}`),
    );
    victim.process.kill('SIGKILL');
    assert.equal(await cut, 'cut');
    await assertNoPartialObject();
    assert.ok(
      !(await bucketArchives()).some((o) => o.key.includes(`/${REGEXP}/${version}/`)),
      'nothing of the cut download is in the bucket',
    );
    upstream.faults.delete(`${REGEXP}@${version}`);
    upstream.releaseStalls();
    // The dead replica's lease runs out; another replica downloads and serves the archive.
    const bytes = await download((replicas[0] as RunningServer).url, REGEXP, version, sum, {
      timeoutMs: 60_000,
    });
    assert.equal(createHash('sha256').update(bytes).digest('hex'), sum);
    assert.equal(hits(REGEXP, version), 2, 'the cut download and the one that finished');
    await assertNoPartialObject();
    await startReplica(2); // same folder, back in the balancer
  });

  test('a command SIGKILLed while it holds the writer lease: the lease runs out, a replica publishes, nothing partial is left', async () => {
    const version = regexpVersions[3] as string;
    upstream.stallMs = 120_000;
    upstream.faults.set(`${REGEXP}@${version}`, 'stall');
    // A mirror in replica 1's folder takes the writer lease for its whole run.
    const mirror = spawn(process.execPath, [cliPath, 'mirror', REGEXP], {
      cwd: roots[1] as string,
      env: { ...process.env, ...SERVE_ENV },
      stdio: 'ignore',
    });
    try {
      await waitFor('the mirror to be half-way through a download', async () =>
        upstream.stalls.some((s) => s.key === `${REGEXP}@${version}`),
      );
    } finally {
      mirror.kill('SIGKILL');
      upstream.faults.delete(`${REGEXP}@${version}`);
      upstream.releaseStalls();
    }
    // The publish waits for the lease (up to a minute); the dead holder's runs out in 15 s.
    const reply = await publish((replicas[2] as RunningServer).url, '1.3.0');
    assert.equal(reply.status, 200, reply.text);
    await download((replicas[0] as RunningServer).url, APP, '1.3.0', reply.checksum);
    await assertNoPartialObject();
    assert.ok(
      !(await bucketArchives()).some((o) => o.key.includes(`/${REGEXP}/${version}/`)),
      'nothing of the cut download is in the bucket',
    );
  });

  test('Redis stopped: stored archives and the index are served, misses and publishes fail fast with 503; restarted: writes work again', async () => {
    const home = newHome();
    await update(balancer.url, home);
    await redis.stop();
    try {
      const xVersion = latest(await readIndex(home), X) as string;
      for (const replica of replicas) {
        await download(replica.url, X, xVersion, checksumIn(fixture, X, xVersion)); // stored: served
      }
      assert.equal((await update(balancer.url, home)).action, 'pull');
      // A module nobody asked for yet (the killed mirror fetched regexp's other versions).
      const asked = [...upstream.archiveHits.keys()].map((key) => key.slice(0, key.lastIndexOf('@')));
      const [missedModule, missedVersions] = [...fixture.modules].find(
        ([module]) => module !== REGEXP && !asked.includes(module),
      ) as [string, Map<string, unknown>];
      const missed = [...missedVersions.keys()][0] as string;
      const started = Date.now();
      const miss = await fetch(`${(replicas[0] as RunningServer).url}/user/${missedModule}/${missed}.zip`);
      assert.equal(miss.status, 503, await miss.text());
      assert.ok(miss.headers.get('retry-after'), 'a 503 says when to try again');
      assert.ok(Date.now() - started < 10_000, 'the miss failed fast');
      assert.equal(hits(missedModule, missed), 0, 'no upstream request without the lease');
      const refused = await publish((replicas[1] as RunningServer).url, '1.2.0');
      assert.equal(refused.status, 503, refused.text);
    } finally {
      await redis.restart();
    }
    // Redis came back empty; the replicas reconnect, and the bucket still knows the history.
    const published = await waitFor('a publish after the restart', async () => {
      const reply = await publish((replicas[1] as RunningServer).url, '1.2.0');
      return reply.status === 200 ? reply : undefined;
    });
    await download((replicas[2] as RunningServer).url, APP, '1.2.0', published.checksum);
    assert.equal((await update(balancer.url, home)).action, 'pull', 'the history goes on from where it was');
    assert.ok((await readIndex(home)).modules.get(APP)?.has('1.1.0'), 'earlier publishes are kept');
  });

  test('the bucket unreachable: archives answer 503, not 404', async () => {
    const xVersion = [...(fixture.modules.get(X)?.keys() ?? [])].at(-1) as string;
    await s3.stop();
    for (const replica of replicas) {
      const res = await fetch(`${replica.url}/user/${X}/${xVersion}.zip`);
      assert.equal(res.status, 503, await res.text());
    }
  });
});
