import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { parseUploadPackRequest, protocolVersion, UPLOAD_PACK_SERVICE } from '../git/upload-pack-request.js';
import type { ByteBudget } from './byte-budget.js';
import { HeldBody } from './held-body.js';
import { BUSY_RETRY_AFTER_SECONDS, HttpError } from './http-error.js';
import { bodyTooLarge, byteLimit, pktLineCheck } from './request-body.js';
import type { UploadPackAnswers } from './upload-pack-answers.js';

/**
 * The smart HTTP protocol for the served index, upload-pack only (PROTOCOL.md 2), behaving like
 * `git http-backend`: git does all the pack work (upload-pack-answers.ts runs it, or answers
 * from its cache). Nothing here ever reads a file of the repository, so the dumb protocol
 * cannot leak through.
 */

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
  /** Memory shared by every request body being read or waiting for git (held-body.ts). */
  bodies: ByteBudget;
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
  if (service !== UPLOAD_PACK_SERVICE)
    throw new HttpError(404, 'not found: only the smart HTTP protocol is served');
  const request = {
    kind: 'advertise' as const,
    version: protocolVersion(gitProtocolHeader(req)),
    body: new HeldBody(Buffer.alloc(0)),
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
  const { body, parsed } = await receiveBody(ctx, req, gzipped);
  const request = {
    kind: 'upload-pack' as const,
    version: protocolVersion(gitProtocolHeader(req)),
    body,
    packets: parsed?.packets,
    oids: parsed?.oids ?? new Set<string>(),
  };
  try {
    await ctx.answers.respond(request, res, (length) => ({
      'Content-Type': RESULT_TYPE,
      'Cache-Control': 'no-cache',
      ...(length === undefined ? {} : { 'Content-Length': String(length) }),
    }));
  } finally {
    body.drop();
  }
}

/** The request body, held until git has it, and what it asks (when it can be read). */
async function receiveBody(ctx: GitContext, req: IncomingMessage, gzipped: boolean) {
  const taken = { bytes: 0 };
  let bytes: Buffer;
  try {
    bytes = await readRequestBody(ctx, req, gzipped, taken);
  } catch (error) {
    ctx.bodies.give(taken.bytes);
    throw error;
  }
  return {
    body: new HeldBody(bytes, () => ctx.bodies.give(taken.bytes)),
    parsed: parseUploadPackRequest(bytes),
  };
}

/**
 * The whole request body, checked: counted as sent and again after gunzip (where a small body
 * can become a huge one), and framed as git frames it. Its bytes are taken from `ctx.bodies`
 * as they arrive (and added to `taken`), so many large bodies at once cannot exhaust memory.
 */
async function readRequestBody(
  ctx: GitContext,
  req: IncomingMessage,
  gzipped: boolean,
  taken: { bytes: number },
): Promise<Buffer> {
  const stages = gzipped
    ? [byteLimit(ctx.maxRequestBody), createGunzip(), byteLimit(ctx.maxRequestBody)]
    : [byteLimit(ctx.maxRequestBody)];
  const chunks: Buffer[] = [];
  const collect = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (!ctx.bodies.take(chunk.length)) {
        callback(
          new HttpError(503, 'no memory left for more git requests at once, try again shortly', {
            'Retry-After': BUSY_RETRY_AFTER_SECONDS,
            Connection: 'close',
          }),
        );
        return;
      }
      taken.bytes += chunk.length;
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
  return typeof value === 'string' ? value : undefined;
}
