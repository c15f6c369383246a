import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { runGit } from '../git/run-git.js';
import {
  type AnswerKind,
  encodeRequest,
  type Packet,
  type ProtocolVersion,
  pktLine,
  requestKey,
  UPLOAD_PACK_SERVICE,
} from '../git/upload-pack-request.js';
import { SERVED_BRANCH } from '../index/served-index.js';
import { HeldBody } from './held-body.js';
import { BUSY_RETRY_AFTER_SECONDS, HttpError } from './http-error.js';
import { LimiterBusyError, type ProcessLimiter, type Release } from './process-limiter.js';
import { UploadPackCache } from './upload-pack-cache.js';
import { UploadPackFlight } from './upload-pack-flight.js';
import { type WarmRequest, WarmUpPlan } from './upload-pack-warmup.js';

/**
 * Every answer of `git upload-pack` for the served index: from memory when the same request was
 * answered at the same tip, from an identical request's git run still in flight, or from a new
 * git run that is recorded for the next ones. After each new commit the most requested shapes
 * (upload-pack-warmup.ts) are computed before clients ask.
 *
 * Keys include the tip of `main`, the only ref git may advertise here (every other ref is
 * hidden), so a request that depends on the refs sees a new commit at once. An answer is kept
 * only when git exited cleanly and `main` did not move while it ran.
 */

export interface AnswerRequest {
  kind: AnswerKind;
  /** Protocol version read from the Git-Protocol header as git reads it; all git is told. */
  version: ProtocolVersion;
  /** The request body after gunzip (empty for an advertisement), let go once git has it. */
  body: HeldBody;
  /** What the body asks, when it could be read (else it is neither shared nor cached). */
  packets: Packet[] | undefined;
  oids: ReadonlySet<string>;
}

export interface AnswersOptions {
  gitDir: string;
  limiter: ProcessLimiter;
  logger: Logger | undefined;
  cacheBytes: number;
  /** The current commit of `main` (a cheap, shared read). */
  head(): Promise<string | undefined>;
}

type GitChild = ChildProcessByStdio<Writable, Readable, Readable>;

/** How often `main` is checked for a commit made by another process (a `mirror` run). */
const HEAD_POLL_MS = 1000;
/** git's exit status when it dies on what it was sent (die() in usage.c). */
const GIT_DIED = 128;

export class UploadPackAnswers {
  readonly cache: UploadPackCache;
  private readonly flights = new Map<string, UploadPackFlight>();
  private readonly plan = new WarmUpPlan();
  private lastTip: string | undefined;
  private warming: Promise<void> = Promise.resolve();
  /** Stops the warm-up running now (at close). */
  private stopWarmUp: (() => void) | undefined;
  private poll: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: AnswersOptions) {
    this.cache = new UploadPackCache(options.cacheBytes);
  }

  /** Follows `main` so that a commit made elsewhere is warmed up within a second. */
  start(): void {
    if (!this.cache.enabled || this.poll) return;
    this.poll = setInterval(() => void this.checkHead(), HEAD_POLL_MS);
    this.poll.unref();
    void this.checkHead();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.poll);
    this.stopWarmUp?.();
    await this.warming;
  }

  /** Resolves when the warm-ups started so far have ended. */
  warmedUp(): Promise<void> {
    return this.warming;
  }

  /** A change of the served index in this process: warm up without waiting for the poll. */
  async checkHead(): Promise<void> {
    const tip = await this.options.head().catch(() => undefined);
    if (tip !== undefined) this.noticeTip(tip);
  }

  /** Answers one request: from memory, from an identical request in flight, or by running git. */
  async respond(
    request: AnswerRequest,
    res: ServerResponse,
    headers: (length: number | undefined) => OutgoingHttpHeaders,
  ): Promise<void> {
    const tip = await this.options.head();
    const key = this.keyFor(request, tip);
    let flight: UploadPackFlight | undefined;
    if (key !== undefined && tip !== undefined) {
      this.noticeTip(tip);
      // Looked up and, on a miss, registered below with no await between: identical requests join it.
      const answer = this.cache.get(key);
      if (answer) {
        request.body.drop();
        this.cache.counts.hits++;
        res.writeHead(200, headers(answer.length));
        res.end(answer);
        this.learn(request, tip);
        return;
      }
      flight = this.flights.get(key);
      if (flight?.recording) {
        request.body.drop();
        this.cache.counts.shared++;
      } else flight = undefined;
    }
    if (!flight) {
      this.cache.counts.misses++;
      // Registered before it waits for a git slot: identical requests meanwhile join it.
      flight = this.run(request, key, tip);
    }
    await flight.sendTo(res, headers);
    if (flight.succeeded && tip !== undefined) this.learn(request, tip);
  }

  /** A request git answered cleanly counts towards what is warmed up after the next commit. */
  private learn(request: AnswerRequest, tip: string): void {
    if (request.packets === undefined) return;
    const shape = { version: request.version, kind: request.kind, packets: request.packets };
    this.plan.learn(shape, request.oids, tip, request.body.bytes);
  }

  private keyFor(request: AnswerRequest, tip: string | undefined): string | undefined {
    if (!this.cache.enabled || tip === undefined || request.packets === undefined) return undefined;
    return requestKey(request.version, tip, request.kind, request.packets);
  }

  /**
   * Starts git for `request` once a git slot is free (a warm-up brings its own, `warmSlot`).
   * With a key, the run is recorded (others may join it) and its answer cached if it completes
   * cleanly at an unchanged tip.
   */
  private run(
    request: AnswerRequest,
    key: string | undefined,
    tip: string | undefined,
    warmSlot?: Release,
  ): UploadPackFlight {
    const warm = warmSlot !== undefined;
    const flight = new UploadPackFlight(key !== undefined);
    if (key !== undefined) this.flights.set(key, flight);
    const unlist = () => {
      if (key !== undefined && this.flights.get(key) === flight) this.flights.delete(key);
    };
    let reserved = 0;
    const giveBack = () => {
      this.cache.recording.give(reserved);
      reserved = 0;
    };
    let child: GitChild | undefined;
    let killed = false;
    const waiting = new AbortController();
    const kill = () => {
      if (killed) return;
      killed = true;
      unlist();
      request.body.drop();
      waiting.abort();
      child?.kill('SIGKILL');
      // Output already in the pipe is not wanted (nor counted) any more.
      child?.stdout.destroy();
      flight.fail(new HttpError(499, 'nobody is waiting for this answer any more'));
    };
    flight.attach({
      pause: () => child?.stdout.pause(),
      resume: () => child?.stdout.resume(),
      // Nobody left to answer; a warm-up has nobody to begin with and runs on while it records.
      abandoned: () => {
        if (!warm || !flight.recording) kill();
      },
      // Recorded bytes count until the last reader has them (the cache holds its own copy).
      released: giveBack,
    });
    if (warm) this.stopWarmUp = kill;
    const slot = warmSlot ? Promise.resolve(warmSlot) : this.gitSlot(waiting.signal);
    slot.then(
      (release) => {
        if (killed) return release();
        try {
          child = spawnUploadPack(this.options.gitDir, request, release);
        } catch (error) {
          unlist();
          request.body.drop();
          this.options.logger?.error({ err: error }, 'cannot run git upload-pack');
          return flight.fail(new HttpError(500, 'the index repository is not available'));
        }
        this.follow(child, flight, request, key, tip, {
          killed: () => killed,
          unlist,
          record: (bytes) => {
            if (this.cache.recording.take(bytes)) {
              reserved += bytes;
              return;
            }
            // Too big to cache: the readers it has go on, nobody new joins, and what it keeps
            // from now on is bounded by its slowest reader (upload-pack-flight.ts).
            unlist();
            flight.stopRecording();
            giveBack();
            if (!flight.hasReaders) kill();
          },
        });
      },
      (error: unknown) => {
        unlist();
        request.body.drop();
        flight.fail(error);
      },
    );
    return flight;
  }

  /**
   * Waits in line for a git slot. A full line, or too long a wait, is a 503 the client may retry.
   */
  private async gitSlot(signal: AbortSignal): Promise<Release> {
    const { limiter, logger } = this.options;
    try {
      return await limiter.acquire(signal);
    } catch (error) {
      if (!(error instanceof LimiterBusyError)) throw error;
      if (error.reason === 'aborted') throw new HttpError(499, 'the client went away while waiting');
      logger?.warn({ reason: error.reason, ...limiter.counts }, 'git upload-pack request turned away');
      throw new HttpError(503, 'too many git requests at once, try again shortly', {
        'Retry-After': BUSY_RETRY_AFTER_SECONDS,
      });
    }
  }

  /** Feeds git the request and its output to the flight; caches a clean answer. */
  private follow(
    child: GitChild,
    flight: UploadPackFlight,
    request: AnswerRequest,
    key: string | undefined,
    tip: string | undefined,
    run: { killed(): boolean; unlist(): void; record(bytes: number): void },
  ): void {
    const { unlist } = run;
    // Protocol v2 starts with git's own capability advertisement; v0/v1 expect the service line.
    if (request.kind === 'advertise' && request.version < 2) {
      flight.data(Buffer.concat([pktLine(`# service=${UPLOAD_PACK_SERVICE}\n`), Buffer.from('0000')]));
    }
    child.stdout.on('data', (chunk: Buffer) => {
      // After a kill, git's last output may still arrive: nobody wants it.
      if (run.killed() || flight.finished) return;
      if (flight.recording) run.record(chunk.length);
      flight.data(chunk);
    });
    // git may stop reading early (a bad request); its exit status says what happened.
    child.stdin.on('error', () => {});
    child.stdin.end(request.body.take());
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    let settled = false;
    child.on('error', (error) => {
      if (settled) return;
      settled = true;
      unlist();
      this.options.logger?.error({ err: error.message }, 'cannot run git upload-pack');
      flight.fail(new HttpError(500, 'the index repository is not available'));
    });
    child.on('close', (code, signal) => {
      if (settled) return;
      settled = true;
      if (code !== 0) {
        unlist();
        if (run.killed()) return;
        this.options.logger?.warn({ code, signal, stderr: stderr.trim() }, `git ${request.kind} failed`);
        flight.fail(gitFailure(request.kind, code));
        return;
      }
      flight.finish();
      const answer = flight.answer();
      if (key === undefined || !answer) return unlist();
      void this.options
        .head()
        .catch(() => undefined)
        .then((now) => {
          // `main` moved while git ran: the answer may be of either commit, so it is not kept.
          if (now === tip && !this.closed) this.cache.set(key, answer);
          unlist();
        });
    });
  }

  /** A tip not seen before: learn its parent, then answer the most requested shapes for it. */
  private noticeTip(tip: string): void {
    if (tip === this.lastTip || !this.cache.enabled) return;
    this.lastTip = tip;
    this.warming = this.warming
      .then(() => this.warmUp(tip))
      .catch((error: unknown) => {
        this.options.logger?.warn({ err: error }, 'upload-pack warm-up failed');
      });
  }

  private async warmUp(tip: string): Promise<void> {
    let parent = this.plan.parentOf(tip);
    if (parent === undefined) {
      const { stdout } = await runGit(
        ['--git-dir', this.options.gitDir, 'rev-parse', '--verify', '--quiet', `${tip}^1`],
        { okCodes: [1] },
      );
      parent = stdout.toString('utf8').trim() || null;
      this.plan.addTip(tip, parent);
    }
    const requests = this.plan.requestsFor(tip, parent);
    this.plan.age();
    for (const request of requests) {
      // Stop when `main` has moved on: the next warm-up is queued behind this one.
      if (this.closed || tip !== this.lastTip) return;
      await this.warmOne(request, tip);
    }
  }

  private async warmOne(shape: WarmRequest, tip: string): Promise<void> {
    const key = requestKey(shape.version, tip, shape.kind, shape.packets);
    if (this.cache.get(key) || this.flights.has(key)) return;
    // Only on a free slot, never ahead of a client: a busy server computes it when a client asks.
    const slot = this.options.limiter.tryAcquire();
    if (!slot) return;
    const request: AnswerRequest = {
      kind: shape.kind,
      version: shape.version,
      body: new HeldBody(shape.kind === 'advertise' ? Buffer.alloc(0) : encodeRequest(shape.packets)),
      packets: shape.packets,
      oids: new Set(),
    };
    this.cache.counts.warmups++;
    // Until the cache has what it will get: a flight too big to record may go on for readers
    // that joined it, at their pace, which the next warm-up does not wait for.
    await this.run(request, key, tip, slot).recorded();
    this.stopWarmUp = undefined;
  }
}

/** git refusing what the client sent is the client's error; anything else is ours. */
function gitFailure(kind: AnswerKind, code: number | null): HttpError {
  if (kind === 'upload-pack' && code === GIT_DIED) {
    return new HttpError(400, 'git upload-pack refused the request');
  }
  return new HttpError(500, `git ${kind === 'advertise' ? 'advertise-refs' : 'upload-pack'} failed`);
}

/** Starts git holding `release`'s slot, which is given back when the process is gone. */
function spawnUploadPack(gitDir: string, request: AnswerRequest, release: Release): GitChild {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0' };
  delete env.GIT_PROTOCOL;
  delete env.GIT_DIR;
  if (request.version > 0) env.GIT_PROTOCOL = `version=${request.version}`;
  const args = [
    // Only `main` is advertised, so its tip is all of the repository state an answer depends on.
    '-c',
    'uploadpack.hideRefs=refs/',
    '-c',
    `uploadpack.hideRefs=!refs/heads/${SERVED_BRANCH}`,
    'upload-pack',
    '--stateless-rpc',
    ...(request.kind === 'advertise' ? ['--advertise-refs'] : []),
    gitDir,
  ];
  let child: GitChild;
  try {
    child = spawn('git', args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
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
