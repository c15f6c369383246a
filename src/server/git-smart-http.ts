import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { Logger } from 'pino';
import { HttpError } from './http-error.js';

/**
 * The smart HTTP protocol for the served index, upload-pack only (PROTOCOL.md 2), behaving like
 * `git http-backend`: git does all the pack work, we only move bytes. Nothing here ever reads a
 * file of the repository, so the dumb protocol cannot leak through.
 */

const UPLOAD_PACK = 'git-upload-pack';
const ADVERTISEMENT_TYPE = 'application/x-git-upload-pack-advertisement';
const REQUEST_TYPE = 'application/x-git-upload-pack-request';
const RESULT_TYPE = 'application/x-git-upload-pack-result';

/** Same headers as http-backend: refs change whenever a mirror commits. */
const NO_CACHE = {
  Expires: 'Fri, 01 Jan 1980 00:00:00 GMT',
  Pragma: 'no-cache',
  'Cache-Control': 'no-cache, max-age=0, must-revalidate',
};

/** A shallow clone's request is a few KiB; this only stops a gzip bomb from feeding git forever. */
const MAX_REQUEST_BYTES = 64 * 1024 * 1024;

export interface GitContext {
  gitDir: string;
  logger: Logger | undefined;
}

type GitChild = ChildProcessByStdio<Writable, Readable, Readable>;

export function refusePush(): never {
  throw new HttpError(403, 'this registry is read-only: pushing (git-receive-pack) is not allowed');
}

/** `GET /git/index/info/refs?service=git-upload-pack` */
export async function handleInfoRefs(
  ctx: GitContext,
  req: IncomingMessage,
  res: ServerResponse,
  service: string | null,
): Promise<void> {
  if (service === 'git-receive-pack') refusePush();
  // Without a service this is a dumb-protocol request, which we never answer.
  if (service !== UPLOAD_PACK) throw new HttpError(404, 'not found: only the smart HTTP protocol is served');
  const gitProtocol = gitProtocolHeader(req);
  const child = spawnUploadPack(ctx, ['--advertise-refs'], gitProtocol);
  child.stdin.end();
  // The advertisement is small: collect it so a failing git becomes a clean 500.
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  await waitForGit(ctx, child, res, 'advertise-refs');
  // Protocol v2 starts with git's own capability advertisement; v0/v1 expect the service line.
  const prefix = protocolVersion(gitProtocol) < 2 ? [pktLine(`# service=${UPLOAD_PACK}\n`), FLUSH] : [];
  const body = Buffer.concat([...prefix, ...chunks]);
  res.writeHead(200, {
    'Content-Type': ADVERTISEMENT_TYPE,
    'Content-Length': String(body.length),
    ...NO_CACHE,
  });
  res.end(body);
}

/** `POST /git/index/git-upload-pack` */
export async function handleUploadPack(
  ctx: GitContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (contentType !== REQUEST_TYPE) throw new HttpError(415, `expected Content-Type ${REQUEST_TYPE}`);
  const encoding = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
  const gzipped = encoding === 'gzip' || encoding === 'x-gzip';
  if (!gzipped && encoding !== '' && encoding !== 'identity') {
    throw new HttpError(415, `unsupported Content-Encoding "${encoding}"`);
  }
  const child = spawnUploadPack(ctx, [], gitProtocolHeader(req));
  // git may stop reading early (a bad request); its exit status and output say what happened.
  child.stdin.on('error', () => {});
  const limit = byteLimit(MAX_REQUEST_BYTES);
  const feeding = (
    gzipped ? pipeline(req, createGunzip(), limit, child.stdin) : pipeline(req, limit, child.stdin)
  ).then(
    () => undefined,
    (error: unknown) => {
      child.kill('SIGKILL');
      return error;
    },
  );
  let headersWritten = false;
  child.stdout.on('data', (chunk: Buffer) => {
    if (!headersWritten) {
      headersWritten = true;
      res.writeHead(200, { 'Content-Type': RESULT_TYPE, 'Cache-Control': 'no-cache' });
    }
    // Backpressure: a slow client pauses git instead of the pack piling up in memory.
    if (!res.write(chunk)) {
      child.stdout.pause();
      res.once('drain', () => child.stdout.resume());
    }
  });
  const [fed, ran] = await Promise.allSettled([feeding, waitForGit(ctx, child, res, 'upload-pack')]);
  const feedError = fed.status === 'fulfilled' ? fed.value : undefined;
  if (res.headersSent) {
    // Once git has started answering, a failure can only be signalled by cutting the
    // connection, so the client sees a broken transfer rather than a short one. (A body
    // problem kills git, so it shows up here too.)
    if (ran.status === 'rejected') res.destroy();
    else res.end();
    return;
  }
  if (feedError instanceof HttpError) throw feedError;
  if (feedError !== undefined) throw new HttpError(400, 'unreadable request body');
  if (ran.status === 'rejected') throw ran.reason;
  // git succeeded without output (nothing to say): still a valid, empty result.
  res.writeHead(200, { 'Content-Type': RESULT_TYPE, 'Cache-Control': 'no-cache', 'Content-Length': '0' });
  res.end();
}

function spawnUploadPack(ctx: GitContext, extraArgs: string[], gitProtocol: string | undefined): GitChild {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0' };
  delete env.GIT_PROTOCOL;
  delete env.GIT_DIR;
  if (gitProtocol !== undefined) env.GIT_PROTOCOL = gitProtocol;
  return spawn('git', ['upload-pack', '--stateless-rpc', ...extraArgs, ctx.gitDir], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/**
 * Resolves when git exits with 0; rejects with a generic 500 otherwise (details go to the log
 * only). A client that goes away first kills git.
 */
function waitForGit(ctx: GitContext, child: GitChild, res: ServerResponse, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let stderr = '';
    const onClientGone = () => {
      if (!res.writableFinished) child.kill('SIGKILL');
    };
    res.on('close', onClientGone);
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    let settled = false;
    // A failed spawn emits both 'error' and 'close': answer and log once.
    const settle = () => {
      const first = !settled;
      settled = true;
      res.off('close', onClientGone);
      return first;
    };
    child.on('error', (error) => {
      if (!settle()) return;
      ctx.logger?.error({ err: error.message }, `cannot run git ${what}`);
      reject(new HttpError(500, 'the index repository is not available'));
    });
    child.on('close', (code, signal) => {
      if (!settle()) return;
      if (code === 0) return resolve();
      if (!res.destroyed) ctx.logger?.warn({ code, signal, stderr: stderr.trim() }, `git ${what} failed`);
      reject(new HttpError(500, `git ${what} failed`));
    });
  });
}

function gitProtocolHeader(req: IncomingMessage): string | undefined {
  const value = req.headers['git-protocol'];
  if (typeof value !== 'string') return undefined;
  // git http-backend passes it through; we keep to the characters the protocol uses.
  return /^[A-Za-z0-9=:._-]{1,256}$/.test(value) ? value : undefined;
}

/** The highest `version=N` among the colon-separated keys, as git's server side reads it. */
export function protocolVersion(gitProtocol: string | undefined): number {
  let version = 0;
  for (const item of gitProtocol?.split(':') ?? []) {
    const match = /^version=(\d+)$/.exec(item);
    if (match) version = Math.max(version, Number(match[1]));
  }
  return version;
}

const FLUSH = Buffer.from('0000');

export function pktLine(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from((payload.length + 4).toString(16).padStart(4, '0')), payload]);
}

function byteLimit(max: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      seen += chunk.length;
      if (seen > max) callback(new HttpError(413, 'request body too large'));
      else callback(null, chunk);
    },
  });
}
