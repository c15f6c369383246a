import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { RegistryError } from '../../src/core/errors.js';
import { renameInto } from '../../src/fs/move-file.js';
import { DownloadError, downloadArchive } from '../../src/upstream/archive-download.js';
import { createHttpAgent } from '../../src/upstream/http-agent.js';

const BODY = Buffer.from('PK\u0003\u0004 a small archive');
const SUM = createHash('sha256').update(BODY).digest('hex');

/** Each path answers differently; the test names what the upstream does wrong. */
const behaviours: Record<string, (res: ServerResponse) => void> = {
  '/ok': (res) => res.writeHead(200, { 'content-length': BODY.length }).end(BODY),
  '/wrong': (res) => res.writeHead(200).end(Buffer.from('other bytes')),
  '/short': (res) => {
    res.writeHead(200, { 'content-length': BODY.length + 10 });
    res.write(BODY);
    res.socket?.destroy();
  },
  '/endless-404': (res) => {
    res.writeHead(404);
    const timer = setInterval(() => res.write('x'.repeat(4096)), 2);
    res.on('close', () => clearInterval(timer));
  },
  '/503': (res) => res.writeHead(503).end('busy'),
  // Announces 2 GB, then sends slowly: refused on the header, before any byte is stored.
  '/huge-announced': (res) => {
    res.writeHead(200, { 'content-length': String(2 * 1024 ** 3) });
    const timer = setInterval(() => res.write(Buffer.alloc(1024)), 10);
    res.on('close', () => clearInterval(timer));
  },
  // No length, and more bytes than allowed: cut once the limit is passed.
  '/endless': (res) => {
    res.writeHead(200);
    const timer = setInterval(() => res.write(Buffer.alloc(16 * 1024)), 1);
    res.on('close', () => clearInterval(timer));
  },
  // One byte every 50 ms, forever: never idle long enough for the read timeout.
  '/trickle': (res) => {
    res.writeHead(200);
    const timer = setInterval(() => res.write('x'), 50);
    res.on('close', () => clearInterval(timer));
  },
  '/401': (res) => res.writeHead(401).end(),
};

let server: Server;
let base: string;
let dir: string;
let agent: Dispatcher;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mr-download-'));
  await mkdir(join(dir, 'tmp'));
  server = createServer((req, res) => {
    const behave = behaviours[req.url ?? ''];
    if (behave) behave(res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  agent = createHttpAgent({ connections: 4, timeoutMs: 5000 });
});

after(async () => {
  await agent.close();
  server.closeAllConnections();
  server.close();
  await rm(dir, { recursive: true, force: true });
});

function job(path: string, name: string, tmpDir = join(dir, 'tmp')) {
  return {
    url: `${base}${path}`,
    headers: {},
    expectedChecksum: SUM,
    keep: (file: string) => renameInto(file, join(dir, 'store', name, `${SUM}.zip`)),
    tmpDir,
    dispatcher: agent,
    label: `a/b@${name}`,
  };
}

async function failure(path: string, name: string): Promise<DownloadError> {
  try {
    await downloadArchive(job(path, name));
  } catch (error) {
    assert.ok(error instanceof DownloadError, String(error));
    return error;
  }
  assert.fail('expected the download to fail');
}

test('a verified body is kept under its final name, nothing else is left', async () => {
  assert.equal(await downloadArchive(job('/ok', 'ok')), BODY.length);
  assert.deepEqual(await readFile(join(dir, 'store', 'ok', `${SUM}.zip`)), BODY);
  assert.deepEqual(await readdir(join(dir, 'tmp')), []);
});

test('wrong bytes are not kept and not worth a retry', async () => {
  const error = await failure('/wrong', 'wrong');
  assert.equal(error.code, 'CHECKSUM');
  assert.equal(error.retryable, false);
  assert.match(error.message, new RegExp(`expected ${SUM}, got [0-9a-f]{64}`));
  assert.equal(existsSync(join(dir, 'store', 'wrong')), false);
  assert.deepEqual(await readdir(join(dir, 'tmp')), []);
});

test('a short body, a 5xx and a refused login are told apart', async () => {
  const short = await failure('/short', 'short');
  assert.equal(short.retryable, true);
  assert.equal((await failure('/503', 'busy')).retryable, true);
  const auth = await failure('/401', 'auth');
  assert.equal(auth.code, 'AUTH');
  assert.equal(auth.retryable, false);
  assert.deepEqual(await readdir(join(dir, 'tmp')), []);
});

test('an endless error body does not hold the download or the pool', async () => {
  const own = createHttpAgent({ connections: 1, timeoutMs: 5000 });
  await assert.rejects(
    downloadArchive({ ...job('/endless-404', 'endless'), dispatcher: own }),
    /answered HTTP 404/,
  );
  // The pool closes only once no response is still streaming into it.
  const closing = await Promise.race([own.close().then(() => 'closed'), delay(5000).then(() => 'stuck')]);
  assert.equal(closing, 'closed');
});

test('a local write failure is our error, not a retryable upstream one', async () => {
  // The temp folder cannot exist: a file stands where its parent should be.
  await writeFile(join(dir, 'a-file'), 'x');
  await assert.rejects(downloadArchive(job('/ok', 'local', join(dir, 'a-file', 'tmp'))), (error: unknown) => {
    assert.ok(error instanceof RegistryError && !(error instanceof DownloadError));
    assert.equal(error.code, 'IO');
    return true;
  });
});

test('limits: an announced or sent size over max_archive_size, and a trickle past the deadline, are refused', async () => {
  const limits = { maxBytes: 64 * 1024, deadlineMs: 800 };
  const announced = await downloadArchive({ ...job('/huge-announced', 'huge'), limits }).catch(
    (e: unknown) => e,
  );
  assert.ok(announced instanceof DownloadError && !announced.retryable, String(announced));
  assert.match(announced.message, /over the limit of 65536 .*max_archive_size/);
  const endless = await downloadArchive({ ...job('/endless', 'endless-ok'), limits }).catch(
    (e: unknown) => e,
  );
  assert.ok(endless instanceof DownloadError && !endless.retryable, String(endless));
  assert.match(endless.message, /max_archive_size/);
  const trickle = await downloadArchive({ ...job('/trickle', 'trickle'), limits }).catch((e: unknown) => e);
  assert.ok(trickle instanceof DownloadError && trickle.retryable && trickle.timeout, String(trickle));
  assert.deepEqual(await readdir(join(dir, 'tmp')), [], 'no partial file left');
  assert.ok(!existsSync(join(dir, 'store', 'trickle')), 'nothing stored');
});
