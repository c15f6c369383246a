import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { UploadPackFlight } from '../../src/server/upload-pack-flight.js';

/** A client that takes nothing until `open()`: every write after the first says "wait". */
class StalledClient extends Writable {
  headersSent = false;
  readonly received: Buffer[] = [];
  private pending: (() => void)[] = [];
  private flowing = false;

  constructor() {
    super({ highWaterMark: 1 });
  }

  writeHead(): this {
    this.headersSent = true;
    return this;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.received.push(chunk);
    if (this.flowing) callback();
    else this.pending.push(callback);
  }

  open(): void {
    this.flowing = true;
    for (const callback of this.pending.splice(0)) callback();
  }
}

const asResponse = (client: StalledClient) => client as unknown as ServerResponse;

describe('upload-pack flight', () => {
  test('what it recorded is let go only when the last reader has it, and kept as one buffer', async () => {
    const flight = new UploadPackFlight(true);
    let released = 0;
    flight.attach({ pause() {}, resume() {}, abandoned() {}, released: () => released++ });
    const client = new StalledClient();
    const sending = flight.sendTo(asResponse(client), () => ({}));
    const parts = [0, 1, 2, 3].map((i) => Buffer.alloc(50_000, i));
    for (const part of parts) flight.data(part);
    flight.finish();
    const answer = flight.answer();
    assert.deepEqual(answer, Buffer.concat(parts));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(released, 0, 'released while a reader still had bytes to receive');
    client.open();
    await sending;
    assert.equal(released, 1);
    assert.deepEqual(Buffer.concat(client.received), Buffer.concat(parts));
    // The cache entry is the buffer the reader was sent from: no second copy.
    assert.ok(client.received.some((piece) => piece.buffer === answer?.buffer));
  });

  test('a flight with no readers is let go when it ends, whether it succeeded or failed', () => {
    for (const end of ['finish', 'fail'] as const) {
      const flight = new UploadPackFlight(true);
      let released = 0;
      flight.attach({ pause() {}, resume() {}, abandoned() {}, released: () => released++ });
      flight.data(Buffer.alloc(10));
      assert.equal(released, 0);
      if (end === 'finish') flight.finish();
      else flight.fail(new Error('git failed'));
      flight.finish();
      assert.equal(released, 1, end);
    }
  });
});
