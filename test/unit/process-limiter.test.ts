import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LimiterBusyError, ProcessLimiter, type Release } from '../../src/server/process-limiter.js';

const limiter = (concurrency: number, maxQueue = 10, maxWaitMs = 10_000) =>
  new ProcessLimiter({ concurrency, maxQueue, maxWaitMs });

const tick = () => new Promise((resolve) => setImmediate(resolve));

async function rejectsWith(promise: Promise<unknown>, reason: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof LimiterBusyError);
    assert.equal(error.reason, reason);
    return true;
  });
}

describe('ProcessLimiter', () => {
  test('runs up to its concurrency at once and queues the rest', async () => {
    const limit = limiter(2);
    const a = await limit.acquire();
    await limit.acquire();
    assert.deepEqual(limit.counts, { running: 2, queued: 0 });
    let third: Release | undefined;
    void limit.acquire().then((release) => {
      third = release;
    });
    await tick();
    assert.equal(third, undefined);
    assert.deepEqual(limit.counts, { running: 2, queued: 1 });
    a();
    await tick();
    assert.ok(third, 'the waiter got the freed slot');
    assert.deepEqual(limit.counts, { running: 2, queued: 0 });
  });

  test('grants in FIFO order and nobody overtakes the line', async () => {
    const limit = limiter(1);
    const first = await limit.acquire();
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) =>
      limit.acquire().then((release) => {
        order.push(n);
        return release;
      }),
    );
    first();
    const one = await waiters[0];
    // A newcomer queues behind 2 and 3 even though it asks right as a slot frees.
    const late = limit.acquire().then((release) => {
      order.push(4);
      return release;
    });
    one?.();
    (await waiters[1])?.();
    (await waiters[2])?.();
    (await late)();
    assert.deepEqual(order, [1, 2, 3, 4]);
    assert.deepEqual(limit.counts, { running: 0, queued: 0 });
  });

  test('releasing twice frees one slot only', async () => {
    const limit = limiter(1);
    const release = await limit.acquire();
    release();
    release();
    assert.deepEqual(limit.counts, { running: 0, queued: 0 });
    const again = await limit.acquire();
    assert.deepEqual(limit.counts, { running: 1, queued: 0 });
    again();
  });

  test('a full queue refuses at once', async () => {
    const limit = limiter(1, 1);
    const held = await limit.acquire();
    const waiting = limit.acquire();
    await rejectsWith(limit.acquire(), 'queue-full');
    assert.deepEqual(limit.counts, { running: 1, queued: 1 });
    held();
    (await waiting)();
    assert.deepEqual(limit.counts, { running: 0, queued: 0 });
  });

  test('no queue at all: busy means refused', async () => {
    const limit = limiter(1, 0);
    const held = await limit.acquire();
    await rejectsWith(limit.acquire(), 'queue-full');
    held();
    (await limit.acquire())();
  });

  test('a waiter that waits too long leaves the line and gets no slot later', async () => {
    const limit = limiter(1, 10, 50);
    const held = await limit.acquire();
    const started = Date.now();
    await rejectsWith(limit.acquire(), 'timeout');
    assert.ok(Date.now() - started >= 40);
    assert.deepEqual(limit.counts, { running: 1, queued: 0 });
    held();
    assert.deepEqual(limit.counts, { running: 0, queued: 0 });
  });

  test('an aborted waiter leaves the line; an aborted signal never queues', async () => {
    const limit = limiter(1);
    const held = await limit.acquire();
    const gone = new AbortController();
    const waiting = limit.acquire(gone.signal);
    const next = limit.acquire();
    assert.equal(limit.counts.queued, 2);
    gone.abort();
    await rejectsWith(waiting, 'aborted');
    assert.equal(limit.counts.queued, 1);
    await rejectsWith(limit.acquire(AbortSignal.abort()), 'aborted');
    held();
    (await next)();
    assert.deepEqual(limit.counts, { running: 0, queued: 0 });
  });
});
