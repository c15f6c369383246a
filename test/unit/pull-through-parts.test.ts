/**
 * The pieces of pull-through serving that decide correctness on their own: durations in
 * registry.toml, the circuit breaker, and the shared download that many clients read at once.
 */
import assert from 'node:assert/strict';
import { createServer, get, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { parseConfigText } from '../../src/config/toml-file.js';
import { formatDuration, parseDuration } from '../../src/core/duration.js';
import { RegistryError } from '../../src/core/errors.js';
import { HttpError } from '../../src/server/http-error.js';
import { SharedDownload } from '../../src/server/shared-download.js';
import { CircuitBreaker } from '../../src/upstream/circuit-breaker.js';
import { resolveAdminToken } from '../../src/upstream/credentials.js';

describe('durations', () => {
  test('units and combinations', () => {
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration(' 2d '), 172_800_000);
  });

  test('anything else is refused', () => {
    for (const bad of ['', '30', 's', '1 h', '-1s', '1x', '1h 30m', '1hh', 'h1', '1e3s', '0x10s']) {
      assert.equal(parseDuration(bad), undefined, bad);
    }
  });

  test('formatting reads back', () => {
    for (const ms of [250, 1500, 30_000, 90_000, 3_600_000, 5_400_000, 90_061_000]) {
      assert.equal(parseDuration(formatDuration(ms)), ms, formatDuration(ms));
    }
  });

  test('registry.toml: new keys have defaults, and a bad duration names its line', () => {
    const { config } = parseConfigText('registry.toml', '');
    assert.equal(config.server.upstream_fallback, false);
    assert.equal(config.server.negative_cache_ttl, '30s');
    assert.equal(config.mirror.auto_sync, false);
    assert.equal(config.mirror.sync_interval, '1h');
    const text = '[mirror]\nauto_sync = true\nsync_interval = "every hour"\n';
    assert.throws(
      () => parseConfigText('registry.toml', text),
      (error: unknown) =>
        error instanceof RegistryError && /line 3/.test(error.message) && /sync_interval/.test(error.message),
    );
    assert.throws(() => parseConfigText('registry.toml', '[mirror]\nsync_interval = "10ms"\n'), /from 1s/);
  });

  test('admin token variables are resolved, and a missing one is named', () => {
    assert.equal(resolveAdminToken('${T}', { T: 'secret' }), 'secret');
    assert.throws(
      () => resolveAdminToken('${T}', {}),
      /server\.admin_token: environment variable T is not set/,
    );
  });
});

describe('circuit breaker', () => {
  /** A breaker on a fake clock: 1 s cooldown, the given threshold and maximum. */
  const breakerOn = (threshold: number, maxCooldownMs = 8000) => {
    let now = 1_000_000;
    const time = { now: () => now, advance: (ms: number) => (now += ms) };
    const breaker = new CircuitBreaker({ threshold, cooldownMs: 1000, maxCooldownMs, now: time.now });
    return { time, breaker };
  };

  test('opens after the threshold, lets one probe through after the cooldown, closes on success', () => {
    const { time, breaker } = breakerOn(3);
    breaker.failure();
    breaker.failure();
    assert.equal(breaker.allow(), true, 'two failures: still closed');
    breaker.failure();
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.allow(), false);
    assert.equal(breaker.retryAt, time.now() + 1000);
    time.advance(1000);
    assert.equal(breaker.state, 'half-open');
    assert.equal(breaker.allow(), true, 'the probe');
    assert.equal(breaker.allow(), false, 'only one probe at a time');
    breaker.success();
    assert.equal(breaker.state, 'closed');
    assert.equal(breaker.allow(), true);
  });

  test('a failed probe doubles the cooldown, up to the maximum; success resets it', () => {
    const { time, breaker } = breakerOn(1, 3000);
    const openFor = () => (breaker.retryAt ?? Number.NaN) - time.now();
    breaker.failure();
    for (const expected of [2000, 3000, 3000]) {
      time.advance(openFor());
      assert.equal(breaker.allow(), true);
      breaker.failure();
      assert.equal(openFor(), expected);
    }
    time.advance(3000);
    assert.equal(breaker.allow(), true);
    breaker.success();
    breaker.failure();
    assert.equal(openFor(), 1000);
  });

  test('failures of requests sent before the circuit opened do not extend it', () => {
    const { time, breaker } = breakerOn(1);
    breaker.failure();
    const retryAt = breaker.retryAt;
    time.advance(500);
    breaker.failure(); // a late answer of a request sent earlier
    assert.equal(breaker.retryAt, retryAt);
  });

  test('a probe nobody reports on expires, so the circuit cannot stay shut for good', () => {
    const { time, breaker } = breakerOn(1);
    breaker.failure();
    time.advance(1000);
    assert.equal(breaker.allow(), true);
    time.advance(999);
    assert.equal(breaker.allow(), false);
    time.advance(1);
    assert.equal(breaker.allow(), true);
  });
});

describe('shared download', () => {
  let server: Server;
  let base: string;
  let current: SharedDownload;

  before(async () => {
    server = createServer((req, res) => {
      current
        .sendTo(req, res, (length) => (length === undefined ? {} : { 'Content-Length': String(length) }))
        .catch((error: unknown) => {
          const status = error instanceof HttpError ? error.status : 500;
          res.writeHead(status).end(String((error as Error).message));
        });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  interface Reader {
    response: Promise<IncomingMessage>;
    /** Bytes so far. */
    received(): Buffer;
    /** Resolves with the whole body, rejects when the connection is cut. */
    body: Promise<Buffer>;
  }

  function read(method = 'GET'): Reader {
    const chunks: Buffer[] = [];
    let resolveResponse: (res: IncomingMessage) => void = () => {};
    const response = new Promise<IncomingMessage>((resolve) => {
      resolveResponse = resolve;
    });
    const body = new Promise<Buffer>((resolve, reject) => {
      const req = get(`${base}/`, { method }, (res) => {
        resolveResponse(res);
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('aborted', () => reject(new Error('aborted')));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
    body.catch(() => undefined);
    return { response, received: () => Buffer.concat(chunks), body };
  }

  async function until(condition: () => boolean): Promise<void> {
    for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.ok(condition(), 'condition not reached in time');
  }

  test('bytes flow as they arrive, but the last one waits for verification', async () => {
    current = new SharedDownload();
    const client = read();
    current.started(10);
    current.data(Buffer.from('01234'));
    await client.response;
    await until(() => client.received().length === 4);
    current.data(Buffer.from('56789'));
    await until(() => client.received().length === 9);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(client.received().length, 9, 'the last byte is held back');
    current.verified();
    assert.equal((await client.body).toString(), '0123456789');
  });

  test('a late client gets everything from the start; many clients read one download', async () => {
    current = new SharedDownload();
    const early = read();
    current.started(6);
    current.data(Buffer.from('abc'));
    await until(() => early.received().length === 2);
    const late = Array.from({ length: 20 }, () => read());
    current.data(Buffer.from('def'));
    current.verified();
    assert.equal((await early.body).toString(), 'abcdef');
    for (const client of late) assert.equal((await client.body).toString(), 'abcdef');
  });

  test('verification failing at the end cuts every client that has headers', async () => {
    current = new SharedDownload();
    const client = read();
    current.started(4);
    current.data(Buffer.from('bad!'));
    await until(() => client.received().length === 3);
    current.fail(new HttpError(502, 'checksum mismatch'));
    await assert.rejects(client.body);
    assert.equal(client.received().length, 3, 'never the whole body');
  });

  test('a failure before the upstream answered becomes the client answer', async () => {
    current = new SharedDownload();
    const client = read();
    await new Promise((resolve) => setTimeout(resolve, 20));
    current.fail(new HttpError(504, 'source "up" timed out'));
    const res = await client.response;
    assert.equal(res.statusCode, 504);
    assert.equal((await client.body).toString(), 'source "up" timed out');
  });

  test('a retry starts the body over: readers of the old body are cut, waiting ones get the new', async () => {
    current = new SharedDownload();
    const first = read();
    current.started(4);
    current.data(Buffer.from('ab'));
    await until(() => first.received().length === 1);
    current.started(4); // the attempt broke off; the retry answers
    await assert.rejects(first.body);
    const second = read();
    current.data(Buffer.from('abcd'));
    current.verified();
    assert.equal((await second.body).toString(), 'abcd');
  });

  test('a client that has no byte yet follows a retry, and gets a proper answer if all fails', async () => {
    current = new SharedDownload();
    const follower = read();
    current.started(4);
    current.data(Buffer.from('a')); // the only byte so far is held back: nothing sent yet
    await new Promise((resolve) => setTimeout(resolve, 30));
    current.started(4);
    current.data(Buffer.from('abcd'));
    current.verified();
    assert.equal((await follower.body).toString(), 'abcd');

    current = new SharedDownload();
    const answered = read();
    current.started(4);
    current.data(Buffer.from('x'));
    await new Promise((resolve) => setTimeout(resolve, 30));
    current.fail(new HttpError(502, 'source "up" broke off the download'));
    assert.equal((await answered.response).statusCode, 502);
    assert.equal((await answered.body).toString(), 'source "up" broke off the download');
  });

  test('a failure after verification changes nothing for clients (only storing failed)', async () => {
    current = new SharedDownload();
    const client = read();
    current.started(2);
    current.data(Buffer.from('ok'));
    current.verified();
    current.fail(new Error('ENOSPC'));
    assert.equal((await client.body).toString(), 'ok');
  });

  test('HEAD gets the headers only', async () => {
    current = new SharedDownload();
    const client = read('HEAD');
    current.started(3);
    const res = await client.response;
    assert.equal(res.headers['content-length'], '3');
    assert.equal((await client.body).length, 0);
  });
});
