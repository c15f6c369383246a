import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { SyncReport } from '../../src/registry/index-sync.js';
import { IndexReadiness } from '../../src/server/index-readiness.js';
import { SyncScheduler } from '../../src/server/sync-scheduler.js';

function report(trigger: string): SyncReport {
  return { trigger, started: new Date().toISOString(), seconds: 0, sources: [] };
}

/** A sync function whose runs end only when the test says so. */
function controlledSync() {
  const runs: Array<{ trigger: string; finish: () => void; fail: (error: Error) => void }> = [];
  const sync = (trigger: string) =>
    new Promise<SyncReport>((resolve, reject) => {
      runs.push({ trigger, finish: () => resolve(report(trigger)), fail: reject });
    });
  return { runs, sync };
}

describe('SyncScheduler', () => {
  test('a request during a sync gets the next sync, started after the running one; callers meanwhile share it', async () => {
    const { runs, sync } = controlledSync();
    const scheduler = new SyncScheduler(sync, undefined, undefined);
    const first = scheduler.trigger('startup');
    const second = scheduler.trigger('admin', true);
    const third = scheduler.trigger('admin', true);
    assert.equal(runs.length, 1, 'never two at once');
    runs[0]?.finish();
    assert.equal((await first).trigger, 'startup');
    await delay(0);
    assert.equal(runs.length, 2, 'the follow-up starts when the running sync ends');
    runs[1]?.finish();
    const [a, b] = await Promise.all([second, third]);
    assert.equal(a.trigger, 'admin');
    assert.equal(a, b, 'requests made during one sync share the follow-up');
    assert.equal(runs.length, 2);
    await scheduler.stop();
  });

  test('a follow-up runs even when the sync it waited for failed', async () => {
    const { runs, sync } = controlledSync();
    const scheduler = new SyncScheduler(sync, undefined, undefined);
    const first = scheduler.trigger('startup');
    const second = scheduler.trigger('admin');
    runs[0]?.fail(new Error('upstream down'));
    await assert.rejects(first, /upstream down/);
    await delay(0);
    runs[1]?.finish();
    assert.equal((await second).trigger, 'admin');
    await scheduler.stop();
  });

  test('while retryDelay gives a delay, the next sync comes after it, without auto_sync', async () => {
    const triggers: string[] = [];
    let retrying = true;
    const scheduler = new SyncScheduler(
      async (trigger) => {
        triggers.push(trigger);
        return report(trigger);
      },
      undefined,
      undefined,
      () => (retrying ? 20 : undefined),
    );
    scheduler.start();
    for (let i = 0; i < 100 && triggers.length < 3; i++) await delay(10);
    assert.deepEqual(triggers.slice(0, 3), ['startup', 'retry', 'retry']);
    retrying = false;
    await delay(60);
    const count = triggers.length;
    await delay(60);
    assert.equal(triggers.length, count, 'no more syncs once retryDelay gives none');
    assert.equal(scheduler.status().next_run, null);
    await scheduler.stop();
  });
});

describe('IndexReadiness', () => {
  test('waiters go on at markReady; a wait times out or ends with the client', async () => {
    const readiness = new IndexReadiness(false);
    assert.equal(await readiness.wait(10), false, 'times out');
    const left = new AbortController();
    const abandoned = readiness.wait(10_000, left.signal);
    left.abort();
    assert.equal(await abandoned, false, 'a client that left stops waiting');
    const waiting = readiness.wait(10_000);
    readiness.markReady();
    assert.equal(await waiting, true);
    assert.equal(await readiness.wait(0), true, 'ready: no wait at all');
  });
});
