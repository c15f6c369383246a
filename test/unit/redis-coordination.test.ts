import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { type Coordination, connectCoordination } from '../../src/coordination/redis-coordination.js';
import { RegistryError } from '../../src/core/errors.js';
import { type RunningRedisServer, startRedisServer } from '../support/redis-server.js';

/** Everything opened by a test, closed at the end of the file even when a test failed. */
const opened: Coordination[] = [];
const servers: RunningRedisServer[] = [];
after(async () => {
  await Promise.all(opened.map((coordination) => coordination.close()));
  await Promise.all(servers.map((server) => server.stop()));
});

async function redisServer(...args: Parameters<typeof startRedisServer>): Promise<RunningRedisServer> {
  const server = await startRedisServer(...args);
  servers.push(server);
  return server;
}

/** A broken implementation must fail a test, not hang it (awaiting an abort that never comes). */
const TIMEOUT = { timeout: 30_000 };

/** Instances sharing one fresh key prefix, so tests never see each other's leases or keys. */
async function replicas(
  url: string,
  count: number,
  timeoutMs?: number,
  keyPrefix = `test-${randomUUID()}:`,
): Promise<Coordination[]> {
  const list = await Promise.all(
    Array.from({ length: count }, () => connectCoordination(url, { keyPrefix, timeoutMs })),
  );
  opened.push(...list);
  return list;
}

/** Polls instead of sleeping a fixed time, so a loaded machine makes tests slower, not flaky. */
async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) {
  const giveUpAt = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > giveUpAt) assert.fail(`timed out waiting until ${what}`);
    await delay(20);
  }
}

function hasCode(code: RegistryError['code'], pattern?: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof RegistryError, `expected a RegistryError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

function aborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve) =>
    signal.addEventListener('abort', () => resolve(signal.reason), { once: true }),
  );
}

describe('redis coordination: leases', () => {
  let redis: RunningRedisServer;
  before(async () => {
    redis = await redisServer();
  });

  it('lets one holder in at a time across replicas, and everyone in eventually', TIMEOUT, async () => {
    const instances = await replicas(redis.url, 3);
    let inside = 0;
    let most = 0;
    let done = 0;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        instances[i % 3]?.withLock('publish', { waitMs: 60_000 }, async (signal) => {
          inside++;
          most = Math.max(most, inside);
          await delay(2 + (i % 4) * 3);
          assert.equal(signal.aborted, false);
          inside--;
          done++;
        }),
      ),
    );
    assert.equal(most, 1, 'never two holders at once');
    assert.equal(done, 20);
  });

  it(
    'gives up after waitMs with LOCKED, naming the holder; then the lease is free again',
    TIMEOUT,
    async () => {
      const [a, b] = (await replicas(redis.url, 2)) as [Coordination, Coordination];
      let letGo: () => void = () => undefined;
      let entered: () => void = () => undefined;
      const inside = new Promise<void>((resolve) => {
        entered = resolve;
      });
      const holding = a.withLock('mirror', { waitMs: 0 }, async () => {
        entered();
        await new Promise<void>((resolve) => {
          letGo = resolve;
        });
        return 'a done';
      });
      await inside;
      const self = a.self.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      await assert.rejects(
        b.withLock('mirror', { waitMs: 200 }, async () => 'b got in'),
        hasCode(
          'LOCKED',
          new RegExp(`^${self} holds the lease "mirror" \\(since .+\\); gave up after waiting 200 ms`),
        ),
      );
      letGo();
      assert.equal(await holding, 'a done');
      assert.equal(await b.withLock('mirror', { waitMs: 0 }, async () => 'b got in'), 'b got in');
    },
  );

  it(
    'a holder that stops renewing loses the lease after leaseMs, and another takes it',
    TIMEOUT,
    async () => {
      const [dying, next] = (await replicas(redis.url, 2)) as [Coordination, Coordination];
      let entered: () => void = () => undefined;
      const inside = new Promise<void>((resolve) => {
        entered = resolve;
      });
      const dyingRun = dying.withLock('publish', { waitMs: 0, leaseMs: 600 }, async (signal) => {
        entered();
        return aborted(signal); // stands for a job that notices the abort and stops
      });
      await inside;
      await dying.close(); // no release, no more renewals: like a replica that was killed
      const closedAt = Date.now();
      const taken = await next.withLock('publish', { waitMs: 10_000, leaseMs: 600 }, async () => Date.now());
      // The last renewal (every 200 ms) left at least ~400 ms of lease; nobody may enter before.
      assert.ok(taken - closedAt >= 300, `taken over after ${taken - closedAt} ms, before the lease expired`);
      const reason = await dyingRun;
      assert.ok(reason instanceof RegistryError && reason.code === 'UNAVAILABLE', String(reason));
      assert.match(reason.message, /^cannot renew the lease "publish": coordination service redis:\/\//);
    },
  );

  it(
    'a holder that lost its lease is told so (LOCKED), and its release spares the new holder',
    TIMEOUT,
    async () => {
      const keyPrefix = `test-${randomUUID()}:`;
      const [a, b, c] = (await replicas(redis.url, 3, undefined, keyPrefix)) as [
        Coordination,
        Coordination,
        Coordination,
      ];
      let aInside: () => void = () => undefined;
      let bInside: () => void = () => undefined;
      let bGo: () => void = () => undefined;
      const aEntered = new Promise<void>((resolve) => {
        aInside = resolve;
      });
      const bEntered = new Promise<void>((resolve) => {
        bInside = resolve;
      });
      const bMayFinish = new Promise<void>((resolve) => {
        bGo = resolve;
      });
      // Renewals every second: b takes the lease well before a's next renewal meets b's token.
      const aRun = a.withLock('publish', { waitMs: 0, leaseMs: 3000 }, async (signal) => {
        aInside();
        await bEntered;
        await Promise.race([aborted(signal), delay(5000)]); // at most: a must not hang if never told
        return signal.reason;
      });
      await aEntered;
      // The lease vanishes as if it had expired while a stalled (or Redis had restarted).
      const raw = new Redis(redis.url);
      try {
        assert.equal(await raw.del(`${keyPrefix}lease:publish`), 1);
      } finally {
        raw.disconnect();
      }
      const bRun = b.withLock('publish', { waitMs: 1000 }, async () => {
        bInside();
        await bMayFinish;
      });
      const reason = await aRun; // a has also tried to release it by now
      assert.ok(reason instanceof RegistryError && reason.code === 'LOCKED', String(reason));
      assert.match(reason.message, /^lost the lease "publish": it expired or another replica took it/);
      await assert.rejects(
        c.withLock('publish', { waitMs: 0 }, async () => 'c got in'),
        hasCode('LOCKED'),
      );
      bGo();
      await bRun;
      assert.equal(await c.withLock('publish', { waitMs: 0 }, async () => 'c got in'), 'c got in');
    },
  );

  it('renewal keeps a job three times longer than leaseMs exclusive', TIMEOUT, async () => {
    const [holder, other] = (await replicas(redis.url, 2)) as [Coordination, Coordination];
    const leaseMs = 900;
    let holding = false;
    let entered: () => void = () => undefined;
    const inside = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const job = holder.withLock('publish', { waitMs: 0, leaseMs }, async (signal) => {
      holding = true;
      entered();
      await delay(3 * leaseMs);
      holding = false;
      return signal.aborted;
    });
    await inside;
    let refused = 0;
    for (;;) {
      try {
        await other.withLock('publish', { waitMs: 0, leaseMs }, async () => {
          assert.equal(holding, false, 'got in while the long job still held the lease');
        });
        break;
      } catch (error) {
        hasCode('LOCKED')(error);
        refused++;
        await delay(50);
      }
    }
    assert.equal(await job, false, 'the long job was never told it lost the lease');
    assert.ok(refused >= 10, `only ${refused} attempts refused`);
  });
});

describe('redis coordination: key/value and pub/sub', () => {
  let redis: RunningRedisServer;
  before(async () => {
    redis = await redisServer();
  });

  it('compareAndSet sets only over the expected value (undefined: absent)', TIMEOUT, async () => {
    const [a, b] = (await replicas(redis.url, 2)) as [Coordination, Coordination];
    assert.equal(await a.get('index-head'), undefined);
    assert.equal(await a.compareAndSet('index-head', 'c0', 'c1'), false, 'expected a value, key absent');
    assert.equal(await a.get('index-head'), undefined);
    assert.equal(await a.compareAndSet('index-head', undefined, 'c1'), true);
    assert.equal(await b.get('index-head'), 'c1', 'other replicas see it');
    assert.equal(await b.compareAndSet('index-head', undefined, 'c2'), false, 'expected absent, key set');
    assert.equal(await b.compareAndSet('index-head', 'c0', 'c2'), false, 'mismatch');
    assert.equal(await b.compareAndSet('index-head', 'c1', 'c2'), true, 'match');
    assert.equal(await a.get('index-head'), 'c2');
    assert.equal(await a.compareAndSet('index-head', '', 'c3'), false, 'the empty string is not "absent"');
  });

  it('setExpiring: every replica reads the value until it expires', TIMEOUT, async () => {
    const [a, b] = (await replicas(redis.url, 2)) as [Coordination, Coordination];
    await a.setExpiring('failed:x', 'answer', 300);
    assert.equal(await b.get('failed:x'), 'answer');
    const deadline = Date.now() + 10_000;
    while ((await b.get('failed:x')) !== undefined) {
      assert.ok(Date.now() < deadline, 'the value never expired');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  it('of ten concurrent compareAndSet from one expected value, exactly one wins', TIMEOUT, async () => {
    const instances = await replicas(redis.url, 3);
    assert.equal(await instances[0]?.compareAndSet('head', undefined, 'base'), true);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => instances[i % 3]?.compareAndSet('head', 'base', `next-${i}`)),
    );
    const winners = results.flatMap((won, i) => (won ? [i] : []));
    assert.equal(winners.length, 1, `winners: ${winners.join(', ')}`);
    assert.equal(await instances[1]?.get('head'), `next-${winners[0]}`);
  });

  it('delivers messages to every subscriber, the publisher too, under the prefix only', TIMEOUT, async () => {
    const [a, b] = (await replicas(redis.url, 2)) as [Coordination, Coordination];
    const [stranger] = await replicas(redis.url, 1); // another prefix: another registry
    const atA: string[] = [];
    const atB: string[] = [];
    const atStranger: string[] = [];
    const unsubscribeA = await a.subscribe('index', (message) => atA.push(message));
    await b.subscribe('index', (message) => atB.push(message));
    await stranger?.subscribe('index', (message) => atStranger.push(message));
    await a.publish('index', 'commit-1');
    await until(() => atA.includes('commit-1') && atB.includes('commit-1'), 'both got commit-1');

    await unsubscribeA();
    const markers: string[] = [];
    await a.subscribe('marker', (message) => markers.push(message));
    await b.publish('index', 'commit-2');
    await b.publish('marker', 'after commit-2'); // same connection for a: arrives after commit-2
    await until(() => markers.length === 1 && atB.includes('commit-2'), 'the marker and commit-2 arrived');
    assert.deepEqual(atA, ['commit-1'], 'nothing after unsubscribing');
    assert.deepEqual(atStranger, [], 'another prefix hears nothing');
  });
});

describe('redis coordination: Redis down', () => {
  it(
    'fails fast with UNAVAILABLE while Redis is stopped, and works again after a restart',
    TIMEOUT,
    async () => {
      const redis = await redisServer();
      const [watcher, other] = (await replicas(redis.url, 2)) as [Coordination, Coordination];
      const messages: string[] = [];
      let resyncs = 0;
      await watcher.subscribe(
        'index',
        (message) => messages.push(message),
        () => resyncs++,
      );
      assert.equal(watcher.connected, true);

      let entered: () => void = () => undefined;
      const inside = new Promise<void>((resolve) => {
        entered = resolve;
      });
      const lockedRun = watcher.withLock('publish', { waitMs: 0, leaseMs: 600 }, async (signal) => {
        entered();
        return aborted(signal);
      });
      await inside;

      await redis.stop();
      const reason = await lockedRun; // the holder hears that its lease cannot be renewed
      assert.ok(reason instanceof RegistryError && reason.code === 'UNAVAILABLE', String(reason));
      await until(() => !watcher.connected, 'the loss of the connection was noticed');
      const down = hasCode(
        'UNAVAILABLE',
        /^coordination service redis:\/\/127\.0\.0\.1:\d+ does not answer: /,
      );
      await assert.rejects(watcher.get('index-head'), down);
      await assert.rejects(
        watcher.withLock('publish', { waitMs: 5000 }, async () => 'ran'),
        down,
      );
      await assert.rejects(other.publish('index', 'lost'), down);
      await assert.rejects(other.compareAndSet('index-head', undefined, 'c1'), down);

      await redis.restart();
      await until(() => watcher.connected && other.connected, 'both reconnected');
      await until(() => resyncs === 1, 'the subscriber was told to resync');
      assert.equal(await watcher.get('index-head'), undefined, 'a restarted Redis starts empty');
      assert.equal(await watcher.withLock('publish', { waitMs: 0 }, async () => 'ran'), 'ran');
      // The resubscription may complete a moment after onResync's connection is ready: publish until heard.
      await until(async () => {
        await other.publish('index', 'after restart');
        return messages.includes('after restart');
      }, 'a message after the restart arrived');
      assert.equal(messages.includes('lost'), false);
    },
  );

  it('a server that hangs (SIGSTOP) makes commands time out instead of hanging', TIMEOUT, async () => {
    const redis = await redisServer();
    const [coordination] = (await replicas(redis.url, 1, 500)) as [Coordination];
    assert.equal(await coordination.get('x'), undefined);
    redis.pause();
    try {
      await assert.rejects(
        coordination.get('x'),
        hasCode('UNAVAILABLE', /does not answer: Command timed out/),
      );
      await assert.rejects(coordination.compareAndSet('x', undefined, 'y'), hasCode('UNAVAILABLE'));
    } finally {
      redis.resume();
    }
  });

  it('starts while Redis is down, and connects once it is up', TIMEOUT, async () => {
    // Take a free port from a server, then stop it: nothing listens there at first.
    const probe = await redisServer();
    await probe.stop();
    const [early] = (await replicas(probe.url, 1, 500)) as [Coordination];
    assert.equal(early.connected, false);
    await assert.rejects(early.get('x'), hasCode('UNAVAILABLE', /ECONNREFUSED|not connected/));
    const messages: string[] = [];
    let resyncs = 0;
    await early.subscribe(
      'index',
      (message) => messages.push(message),
      () => resyncs++,
    );

    await probe.restart();
    await until(() => early.connected, 'connected once Redis is up');
    assert.equal(await early.get('x'), undefined);
    await until(() => resyncs >= 1, 'a subscription made while down was told to resync');
    await until(async () => {
      await early.publish('index', 'hello');
      return messages.includes('hello');
    }, 'its messages arrive');
  });

  it('never shows the password of the URL in its messages', TIMEOUT, async () => {
    const password = 'pa55-w0rd-secret';
    const redis = await redisServer(undefined, { password });
    const [good] = (await replicas(redis.url, 1)) as [Coordination];
    assert.equal(await good.compareAndSet('k', undefined, 'v'), true, 'the right password works');
    const wrong = redis.url.replace(encodeURIComponent(password), 'wr0ng-pa55word');
    const [bad] = (await replicas(wrong, 1, 500)) as [Coordination];
    const refused = await bad.get('k').then(
      () => assert.fail('a wrong password was accepted'),
      (error: unknown) => error,
    );
    hasCode('UNAVAILABLE', /^coordination service redis:\/\/127\.0\.0\.1:\d+ does not answer: /)(refused);
    await redis.stop();
    const stopped = await good.get('k').then(
      () => assert.fail('answered while stopped'),
      (error: unknown) => error,
    );
    for (const error of [refused, stopped]) {
      const text = `${(error as Error).message} ${(error as RegistryError).hint}`;
      assert.equal(text.includes(password) || text.includes('wr0ng'), false, text);
    }
  });
});
