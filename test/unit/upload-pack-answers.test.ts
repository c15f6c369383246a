/**
 * The memory an answer holds, with a real git and an answer of several MiB: what is recorded
 * for the cache is given back when a client goes away mid-answer, and as soon as an answer
 * turns out too big to keep, while its client still reads it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseUploadPackRequest, pktLine } from '../../src/git/upload-pack-request.js';
import { HeldBody } from '../../src/server/held-body.js';
import { ProcessLimiter } from '../../src/server/process-limiter.js';
import { UploadPackAnswers } from '../../src/server/upload-pack-answers.js';
import { git } from '../support/git.js';
import { countUploadPacks, waitFor } from '../support/test-registry.js';

describe('upload-pack answers: recorded memory', () => {
  let root: string;
  let gitDir: string;
  let tip: string;
  const servers: Server[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'mbr-answers-'));
    const work = join(root, 'work');
    await git(['init', '-q', '-b', 'main', work]);
    // Incompressible: the pack is as big as the blob.
    await writeFile(join(work, 'blob'), randomBytes(6 * 1024 * 1024));
    await git(['-C', work, 'add', 'blob']);
    await git(['-C', work, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'big']);
    gitDir = join(work, '.git');
    tip = (await git(['--git-dir', gitDir, 'rev-parse', 'main'])).trim();
  });

  after(async () => {
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
    await rm(root, { recursive: true, force: true });
  });

  /** A server answering every POST with a v0 full fetch of the tip, distinct per request. */
  async function serve(cacheBytes: number): Promise<{ answers: UploadPackAnswers; port: number }> {
    const limiter = new ProcessLimiter({ concurrency: 4, maxQueue: 16, maxWaitMs: 30_000 });
    const answers = new UploadPackAnswers({
      gitDir,
      limiter,
      logger: undefined,
      cacheBytes,
      head: async () => tip,
    });
    let n = 0;
    const server = createServer((_req, res) => {
      n++;
      const body = Buffer.concat([
        pktLine(`want ${tip} ofs-delta no-progress x-request-${n}\n`),
        Buffer.from('0000'),
        pktLine('done\n'),
      ]);
      const parsed = parseUploadPackRequest(body);
      assert.ok(parsed);
      const request = {
        kind: 'upload-pack' as const,
        version: 0 as const,
        body: new HeldBody(body),
        ...parsed,
      };
      answers.respond(request, res, () => ({})).catch(() => res.destroy());
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { answers, port: (server.address() as AddressInfo).port };
  }

  /** Reads `bytes` of the answer, then calls `then` with the response (paused). */
  function client(port: number, bytes: number, then: (res: import('node:http').IncomingMessage) => void) {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/' }, (res) => {
      let got = 0;
      const onData = (chunk: Buffer) => {
        got += chunk.length;
        if (got >= bytes) {
          res.off('data', onData);
          res.pause();
          then(res);
        }
      };
      res.on('data', onData);
    });
    req.on('error', () => {});
    req.end();
    return req;
  }

  test('clients that go away mid-answer leave nothing recorded behind', async () => {
    const { answers, port } = await serve(64 * 1024 * 1024);
    for (let i = 0; i < 4; i++) {
      await new Promise<void>((resolve) => {
        const req = client(port, 256 * 1024, () => {
          req.destroy();
          resolve();
        });
      });
    }
    await waitFor(() => countUploadPacks(gitDir) === 0, 'git to stop', 10_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(answers.cache.recording.used, 0);
    assert.equal(answers.cache.stats.entries, 0);
  });

  test('an answer too big to keep gives its recorded bytes back while its client still reads', async () => {
    const { answers, port } = await serve(1024 * 1024);
    let reading: import('node:http').IncomingMessage | undefined;
    await new Promise<void>((resolve) => {
      client(port, 2 * 1024 * 1024, (res) => {
        reading = res;
        resolve();
      });
    });
    assert.equal(answers.cache.recording.used, 0, 'a streaming answer still holds the recording budget');
    let rest = 0;
    reading?.on('data', (chunk: Buffer) => {
      rest += chunk.length;
    });
    await new Promise((resolve) => reading?.on('end', resolve).resume());
    assert.ok(rest > 2 * 1024 * 1024, 'the client got the whole answer');
    assert.equal(answers.cache.recording.used, 0);
  });
});
