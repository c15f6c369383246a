import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { parseUploadPackRequest } from '../git/upload-pack-request.js';
import { HttpError } from './http-error.js';
import { bodyTooLarge, byteLimit, pktLineCheck } from './request-body.js';
import type { UploadPackAnswers } from './upload-pack-answers.js';

/**
 * The smart HTTP protocol for the served index, upload-pack only (PROTOCOL.md 2), behaving like
 * `git http-backend`: git does all the pack work (upload-pack-answers.ts runs it, or answers
 * from its cache). Nothing here ever reads a file of the repository, so the dumb protocol
 * cannot leak through.
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

export interface GitContext {
  answers: UploadPackAnswers;
  /** Bytes of an upload-pack request body, counted as sent and again after gunzip. */
  maxRequestBody: number;
}

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
  const request = {
    kind: 'advertise' as const,
    version: protocolVersion(gitProtocol),
    gitProtocol,
    body: Buffer.alloc(0),
    packets: [],
    oids: new Set<string>(),
  };
  await ctx.answers.respond(request, res, (length) => ({
    'Content-Type': ADVERTISEMENT_TYPE,
    ...(length === undefined ? {} : { 'Content-Length': String(length) }),
    ...NO_CACHE,
  }));
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
  const body = await readRequestBody(ctx, req, gzipped);
  const gitProtocol = gitProtocolHeader(req);
  const parsed = parseUploadPackRequest(body);
  const request = {
    kind: 'upload-pack' as const,
    version: protocolVersion(gitProtocol),
    gitProtocol,
    body,
    packets: parsed?.packets,
    oids: parsed?.oids ?? new Set<string>(),
  };
  await ctx.answers.respond(request, res, (length) => ({
    'Content-Type': RESULT_TYPE,
    'Cache-Control': 'no-cache',
    ...(length === undefined ? {} : { 'Content-Length': String(length) }),
  }));
}

/**
 * The whole request body, checked: counted as sent and again after gunzip (where a small body
 * can become a huge one), and framed as git frames it. Bodies are small next to the answers.
 */
async function readRequestBody(ctx: GitContext, req: IncomingMessage, gzipped: boolean): Promise<Buffer> {
  const stages = gzipped
    ? [byteLimit(ctx.maxRequestBody), createGunzip(), byteLimit(ctx.maxRequestBody)]
    : [byteLimit(ctx.maxRequestBody)];
  const chunks: Buffer[] = [];
  const collect = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  try {
    await pipeline([req, ...stages, pktLineCheck(), collect]);
  } catch (error) {
    throw error instanceof HttpError ? error : new HttpError(400, 'unreadable request body');
  }
  return Buffer.concat(chunks);
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
