import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { runGit } from '../git/run-git.js';
import { encodeRequest, type Packet, pktLine, requestKey } from '../git/upload-pack-request.js';
import { SERVED_BRANCH } from '../index/served-index.js';
import { HttpError } from './http-error.js';
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

export type AnswerKind = 'advertise' | 'upload-pack';

export interface AnswerRequest {
  kind: AnswerKind;
  /** Protocol version from the Git-Protocol header (0 without one). */
  version: number;
  /** The checked Git-Protocol header, passed on to git. */
  gitProtocol: string | undefined;
  /** The request body after gunzip (empty for an advertisement). */
  body: Buffer;
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

const UPLOAD_PACK = 'git-upload-pack';
/** Seconds a client turned away for lack of a git slot should wait before asking again. */
const RETRY_AFTER_SECONDS = '5';
/** How often `main` is checked for a commit made by another process (a `mirror` run). */
const HEAD_POLL_MS = 1000;

export class UploadPackAnswers {
  readonly cache: UploadPackCache;
  private readonly flights = new Map<string, UploadPackFlight>();
  private readonly plan = new WarmUpPlan();
  private lastTip: string | undefined;
  private warming: Promise<void> = Promise.resolve();
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
    await this.warming;
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
    if (key !== undefined && tip !== undefined) {
      this.noticeTip(tip);
      if (request.packets) this.plan.learn({ ...request, packets: request.packets }, request.oids, tip);
      // Looked up and, on a miss, registered below with no await between: identical requests join it.
      const answer = this.cache.get(key);
      if (answer) {
        this.cache.counts.hits++;
        res.writeHead(200, headers(answer.length));
        res.end(answer);
        return;
      }
      const flight = this.flights.get(key);
      if (flight?.recording) {
        this.cache.counts.shared++;
        return flight.sendTo(res, headers);
      }
    }
    this.cache.counts.misses++;
    // Registered before it waits for a git slot: identical requests meanwhile join it.
    await this.run(request, key, tip, false).sendTo(res, headers);
  }

  private keyFor(request: AnswerRequest, tip: string | undefined): string | undefined {
    if (!this.cache.enabled || tip === undefined || request.packets === undefined) return undefined;
    return requestKey(request.version, tip, request.kind, request.packets);
  }

  /**
   * Starts git for `request` once a git slot is free. With a key, the run is recorded (others
   * may join it) and its answer cached if it completes cleanly at an unchanged tip.
   */
  private run(
    request: AnswerRequest,
    key: string | undefined,
    tip: string | undefined,
    warm: boolean,
  ): UploadPackFlight {
    const flight = new UploadPackFlight(key !== undefined);
    if (key !== undefined) this.flights.set(key, flight);
    let reserved = 0;
    const forget = () => {
      if (key !== undefined && this.flights.get(key) === flight) this.flights.delete(key);
      this.cache.unreserve(reserved);
      reserved = 0;
    };
    let child: GitChild | undefined;
    let killed = false;
    const waiting = new AbortController();
    const kill = () => {
      killed = true;
      forget();
      waiting.abort();
      child?.kill('SIGKILL');
    };
    flight.attach({
      pause: () => child?.stdout.pause(),
      resume: () => child?.stdout.resume(),
      // Nobody left to answer; a warm-up has nobody to begin with and runs on for the cache.
      abandoned: () => {
        if (!warm) kill();
      },
    });
    this.gitSlot(waiting.signal).then(
      (release) => {
        if (killed) return release();
        try {
          child = spawnUploadPack(this.options.gitDir, request, release);
        } catch (error) {
          forget();
          this.options.logger?.error({ err: error }, 'cannot run git upload-pack');
          return flight.fail(new HttpError(500, 'the index repository is not available'));
        }
        this.follow(child, flight, request, key, tip, warm, {
          killed: () => killed,
          kill,
          forget,
          reserve: (bytes) => {
            reserved += bytes;
          },
        });
      },
      (error: unknown) => {
        forget();
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
        'Retry-After': RETRY_AFTER_SECONDS,
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
    warm: boolean,
    run: { killed(): boolean; kill(): void; forget(): void; reserve(bytes: number): void },
  ): void {
    const { forget, kill } = run;
    // Protocol v2 starts with git's own capability advertisement; v0/v1 expect the service line.
    if (request.kind === 'advertise' && request.version < 2) {
      flight.data(Buffer.concat([pktLine(`# service=${UPLOAD_PACK}\n`), Buffer.from('0000')]));
    }
    child.stdout.on('data', (chunk: Buffer) => {
      if (flight.recording) {
        if (this.cache.reserve(chunk.length)) run.reserve(chunk.length);
        else {
          // Too big to cache: the readers it has go on, nobody new joins.
          forget();
          flight.stopRecording();
          if (warm) kill();
        }
      }
      flight.data(chunk);
    });
    // git may stop reading early (a bad request); its exit status says what happened.
    child.stdin.on('error', () => {});
    child.stdin.end(request.body);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    let settled = false;
    child.on('error', (error) => {
      if (settled) return;
      settled = true;
      forget();
      this.options.logger?.error({ err: error.message }, 'cannot run git upload-pack');
      flight.fail(new HttpError(500, 'the index repository is not available'));
    });
    child.on('close', (code, signal) => {
      if (settled) return;
      settled = true;
      if (code !== 0) {
        forget();
        if (!run.killed())
          this.options.logger?.warn({ code, signal, stderr: stderr.trim() }, `git ${request.kind} failed`);
        // Only the client's body differs between requests, so git refusing it is the client's error.
        flight.fail(
          request.kind === 'advertise'
            ? new HttpError(500, 'git advertise-refs failed')
            : new HttpError(400, 'git upload-pack refused the request'),
        );
        return;
      }
      flight.finish();
      const answer = flight.answer();
      if (key === undefined || !answer) return forget();
      void this.options
        .head()
        .catch(() => undefined)
        .then((now) => {
          // `main` moved while git ran: the answer may be of either commit, so it is not kept.
          if (now === tip && !this.closed) this.cache.set(key, answer);
          forget();
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
    for (const request of this.plan.requestsFor(tip, parent)) {
      // Stop when `main` has moved on: the next warm-up is queued behind this one.
      if (this.closed || tip !== this.lastTip) return;
      await this.warmOne(request, tip);
    }
  }

  private async warmOne(shape: WarmRequest, tip: string): Promise<void> {
    const key = requestKey(shape.version, tip, shape.kind, shape.packets);
    if (this.cache.get(key) || this.flights.has(key)) return;
    // Behind clients, never ahead of them: nothing is warmed while requests wait for git.
    if (this.options.limiter.counts.queued > 0) return;
    const request: AnswerRequest = {
      kind: shape.kind as AnswerKind,
      version: shape.version,
      gitProtocol: shape.version > 0 ? `version=${shape.version}` : undefined,
      body: shape.kind === 'advertise' ? Buffer.alloc(0) : encodeRequest(shape.packets),
      packets: shape.packets,
      oids: new Set(),
    };
    this.cache.counts.warmups++;
    // A warm-up turned away (a busy server) fails quietly: clients compute it when they ask.
    await this.run(request, key, tip, true).settled();
  }
}

/** Starts git holding `release`'s slot, which is given back when the process is gone. */
function spawnUploadPack(gitDir: string, request: AnswerRequest, release: Release): GitChild {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_TERMINAL_PROMPT: '0' };
  delete env.GIT_PROTOCOL;
  delete env.GIT_DIR;
  if (request.gitProtocol !== undefined) env.GIT_PROTOCOL = request.gitProtocol;
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
