import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Packet, parseUploadPackRequest } from '../../src/git/upload-pack-request.js';
import { type WarmRequest, WarmUpPlan } from '../../src/server/upload-pack-warmup.js';
import { pkt } from '../support/test-registry.js';

const A = 'a1'.repeat(20);
const B = 'b2'.repeat(20);
const C = 'c3'.repeat(20);

/** A v2 shallow clone of `tip` (padding: extra `have` lines of the tip, to make it larger). */
function shallowClone(tip: string, padding = 0): { request: WarmRequest; oids: Set<string>; bytes: number } {
  const args = ['thin-pack', 'deepen 1', `want ${tip}`, ...Array(padding).fill(`have ${tip}`), 'done'];
  const body = Buffer.from(`${pkt('command=fetch\n')}0001${args.map((a) => pkt(`${a}\n`)).join('')}0000`);
  const parsed = parseUploadPackRequest(body);
  assert.ok(parsed);
  return {
    request: { version: 2, kind: 'upload-pack', packets: parsed.packets },
    oids: parsed.oids,
    bytes: body.length,
  };
}

const wants = (requests: WarmRequest[]) =>
  requests.map((r) =>
    r.packets.flatMap((p: Packet) => ('data' in p && p.data.startsWith('want') ? [p.data] : [])),
  );

describe('warm-up plan', () => {
  test('a shape learnt at one tip is replayed at the next, then fades unless asked for again', () => {
    const plan = new WarmUpPlan();
    plan.addTip(A, null);
    const clone = shallowClone(A);
    plan.learn(clone.request, clone.oids, A, clone.bytes);
    plan.addTip(B, A);
    assert.deepEqual(wants(plan.requestsFor(B, A)), [[`want ${B}`]]);
    plan.age();
    plan.addTip(C, B);
    assert.deepEqual(
      plan.requestsFor(C, B),
      [],
      'a shape asked for once, two commits ago, is still warmed up',
    );
  });

  test('a shape asked for often outlives a few quiet commits', () => {
    const plan = new WarmUpPlan();
    plan.addTip(A, null);
    const clone = shallowClone(A);
    for (let i = 0; i < 4; i++) plan.learn(clone.request, clone.oids, A, clone.bytes);
    plan.addTip(B, A);
    assert.equal(plan.requestsFor(B, A).length, 1);
    plan.age(); // 4 -> 2
    plan.addTip(C, B);
    assert.equal(plan.requestsFor(C, B).length, 1);
  });

  test('large requests and requests naming other objects are not learnt', () => {
    const plan = new WarmUpPlan();
    plan.addTip(A, null);
    const large = shallowClone(A, 200);
    assert.ok(large.bytes > 4096);
    plan.learn(large.request, large.oids, A, large.bytes);
    const other = shallowClone(C);
    plan.learn(other.request, other.oids, A, other.bytes);
    plan.addTip(B, A);
    assert.deepEqual(plan.requestsFor(B, A), []);
  });
});
