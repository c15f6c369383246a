import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { Logger } from 'pino';
import { HttpError } from './http-error.js';
import { LimiterBusyError, type ProcessLimiter, type Release } from './process-limiter.js';
import { bodyTooLarge, byteLimit, pktLineCheck } from './request-body.js';

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

/**
 * git's first output is held back this far: a request git refuses then still gets a proper
 * 4xx (instead of a 200 cut short), and a small answer goes out with its Content-Length.
 */
const HOLD_BACK_BYTES = 64 * 1024;

/** Seconds a client turned away for lack of a git slot should wait before asking again. */
const RETRY_AFTER_SECONDS = '5';

export interface GitContext {
  gitDir: string;
  logger: Logger | undefined;
  /** Every upload-pack process takes a slot here first; the rest wait in line. */
  limiter: ProcessLimiter;
  /** Bytes of an upload-pack request body, counted as sent and again after gunzip. */
  maxRequestBody: number;
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
  const child = spawnUploadPack(ctx, ['--advertise-refs'], gitProtocol, await gitSlot(ctx, res));
  child.stdin.end();
  // The advertisement is small: collect it so a failing git becomes a clean 500.
  const chunks: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
  // Nothing of the client's reaches git here but a checked header: a failure is ours.
  await waitForGit(ctx, child, res, 'advertise-refs', 500);
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
  // Refused before git or a slot is taken; a body without a length is counted as it comes.
  if (Number(req.headers['content-length'] ?? 0) > ctx.maxRequestBody) throw bodyTooLarge();
  const child = spawnUploadPack(ctx, [], gitProtocolHeader(req), await gitSlot(ctx, res));
  // git may stop reading early (a bad request); its exit status and output say what happened.
  child.stdin.on('error', () => {});
  // Counted as sent and again after gunzip, where a small body can become a huge one.
  const stages = gzipped
    ? [byteLimit(ctx.maxRequestBody), createGunzip(), byteLimit(ctx.maxRequestBody)]
    : [byteLimit(ctx.maxRequestBody)];
  const feeding = pipeline([req, ...stages, pktLineCheck(), child.stdin]).then(
    () => undefined,
    (error: unknown): HttpError | undefined => {
      // git closed its input (it refused the request or had all it needed; it may still be
      // answering): its exit says which. A client that went away has git killed on its own.
      if (isPipeClosed(error)) return undefined;
      child.kill('SIGKILL');
      return error instanceof HttpError ? error : new HttpError(400, 'unreadable request body');
    },
  );
  const held: Buffer[] = [];
  let heldBytes = 0;
  let streaming = false;
  child.stdout.on('data', (chunk: Buffer) => {
    if (!streaming) {
      held.push(chunk);
      heldBytes += chunk.length;
      if (heldBytes < HOLD_BACK_BYTES) return;
      streaming = true;
      res.writeHead(200, { 'Content-Type': RESULT_TYPE, 'Cache-Control': 'no-cache' });
      chunk = Buffer.concat(held.splice(0));
    }
    // Backpressure: a slow client pauses git instead of the pack piling up in memory.
    if (!res.write(chunk)) {
      child.stdout.pause();
      res.once('drain', () => child.stdout.resume());
    }
  });
  // Only the client's body differs between requests, so git refusing it is the client's error.
  const [fed, ran] = await Promise.allSettled([feeding, waitForGit(ctx, child, res, 'upload-pack', 400)]);
  const feedError = fed.status === 'fulfilled' ? fed.value : undefined;
  if (streaming) {
    // Once git has started answering, a failure can only be signalled by cutting the
    // connection, so the client sees a broken transfer rather than a short one.
    if (ran.status === 'rejected' || feedError) res.destroy();
    else res.end();
    return;
  }
  // The body's fault first: git was killed because of it, and its exit says nothing more.
  if (feedError) throw feedError;
  if (ran.status === 'rejected') throw ran.reason;
  // The whole answer (possibly empty) is here.
  const body = Buffer.concat(held);
  res.writeHead(200, {
    'Content-Type': RESULT_TYPE,
    'Cache-Control': 'no-cache',
    'Content-Length': String(body.length),
  });
  res.end(body);
}

/**
 * Waits in line for a git slot. A full line, or too long a wait, is a 503 the client may retry;
 * a client that goes away while waiting leaves the line.
 */
async function gitSlot(ctx: GitContext, res: ServerResponse): Promise<Release> {
  const gone = new AbortController();
  const onClose = () => gone.abort();
  res.once('close', onClose);
  try {
    return await ctx.limiter.acquire(gone.signal);
  } catch (error) {
    if (!(error instanceof LimiterBusyError)) throw error;
    if (error.reason === 'aborted') throw new HttpError(499, 'the client went away while waiting');
    ctx.logger?.warn({ reason: error.reason, ...ctx.limiter.counts }, 'git upload-pack request turned away');
    throw new HttpError(503, 'too many git requests at once, try again shortly', {
      'Retry-After': RETRY_AFTER_SECONDS,
    });
  } finally {
    res.off('close', onClose);
  }
}

/** Starts git holding `release`'s slot, which is given back when the process is gone. */
function spawnUploadPack(
  ctx: GitContext,
  extraArgs: string[],
  gitProtocol: string | undefined,
  release: Release,
): GitChild {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0' };
  delete env.GIT_PROTOCOL;
  delete env.GIT_DIR;
  if (gitProtocol !== undefined) env.GIT_PROTOCOL = gitProtocol;
  let child: GitChild;
  try {
    child = spawn('git', ['upload-pack', '--stateless-rpc', ...extraArgs, ctx.gitDir], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } catch (error) {
    release();
    throw error;
  }
  child.once('close', release);
  // A process that never started has no 'close' to wait for on every Node version.
  child.once('error', () => {
    if (child.pid === undefined) release();
  });
  return child;
}

function isPipeClosed(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_PREMATURE_CLOSE';
}

/**
 * Resolves when git exits with 0; rejects otherwise with `failStatus` (500 when the failure is
 * ours, 400 when git refused what the client sent; details go to the log only). A failed start
 * is always a 500. A client that goes away first kills git.
 */
function waitForGit(
  ctx: GitContext,
  child: GitChild,
  res: ServerResponse,
  what: string,
  failStatus: 400 | 500,
): Promise<void> {
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
      reject(
        new HttpError(
          failStatus,
          failStatus === 400 ? `git ${what} refused the request` : `git ${what} failed`,
        ),
      );
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
