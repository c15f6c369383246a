import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { drained, Wakers } from './response-waits.js';

/**
 * One run of `git upload-pack` whose answer any number of clients read at once, each at its own
 * pace (single-flight). The first bytes are held back (HOLD_BACK_BYTES) so that git refusing a
 * request still becomes a proper 4xx, and the last byte is held until git exits cleanly, so a
 * client never receives a complete-looking answer from a failed git: after headers, a failure
 * can only cut the connection.
 *
 * While the flight is *recording*, every byte is kept (late joiners start from the first byte,
 * and the whole answer becomes a cache entry, one buffer shared with the readers still being
 * sent it). A flight that stops recording (its answer is too big for the cache) drops what every
 * reader has sent and pauses git while the slowest reader lags, so a slow client costs the
 * server a bounded amount of memory. The source hears when the flight is over and no reader
 * holds it any more (`released`): only then is what it kept let go.
 */

/** git's first output held back this far; a small answer then goes out with its Content-Length. */
const HOLD_BACK_BYTES = 64 * 1024;
/** A flight that does not record pauses git while a reader lags this far behind. */
const LAG_HIGH_WATER = 1024 * 1024;

type Phase = 'holding' | 'streaming' | 'done' | 'failed';

export interface FlightSource {
  pause(): void;
  resume(): void;
  /** Every reader left before the end; the source may stop. */
  abandoned(): void;
  /** The flight has finished and no reader holds it: nothing it kept is in use any more. */
  released(): void;
}

interface Reader {
  /** Bytes of the answer sent to this reader. */
  sent: number;
  chunk: number;
  offset: number;
}

export class UploadPackFlight {
  private readonly chunks: (Buffer | undefined)[] = [];
  private received = 0;
  private phase: Phase = 'holding';
  private failure: unknown;
  private recordingOn: boolean;
  private paused = false;
  private readonly readers = new Set<Reader>();
  private readonly wakers = new Wakers();
  private source: FlightSource | undefined;
  private sourceReleased = false;

  /** `record`: keep every byte (for late joiners and the cache). */
  constructor(record: boolean) {
    this.recordingOn = record;
  }

  attach(source: FlightSource): void {
    this.source = source;
  }

  get recording(): boolean {
    return this.recordingOn;
  }

  get finished(): boolean {
    return this.phase === 'done' || this.phase === 'failed';
  }

  get succeeded(): boolean {
    return this.phase === 'done';
  }

  get hasReaders(): boolean {
    return this.readers.size > 0;
  }

  /** Stops keeping what every reader has sent; no new reader may join after this. */
  stopRecording(): void {
    if (!this.recordingOn) return;
    this.recordingOn = false;
    this.trim();
    this.wakers.wake();
  }

  data(chunk: Buffer): void {
    if (this.finished || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.received += chunk.length;
    if (this.phase === 'holding' && this.received >= HOLD_BACK_BYTES) this.phase = 'streaming';
    this.trim();
    this.wakers.wake();
  }

  /** git exited cleanly: the answer is complete. */
  finish(): void {
    if (this.finished) return;
    this.phase = 'done';
    if (this.recordingOn) this.joinChunks();
    this.wakers.wake();
    this.releaseIfIdle();
  }

  /** git failed: readers without headers get `error` thrown, the others are cut. */
  fail(error: unknown): void {
    if (this.finished) return;
    this.phase = 'failed';
    this.failure = error;
    this.wakers.wake();
    this.releaseIfIdle();
  }

  /** The whole answer, once finished while recording (the buffer readers are sent from). */
  answer(): Buffer | undefined {
    if (this.phase !== 'done' || !this.recordingOn) return undefined;
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Resolves when the flight has finished (either way) or stopped recording. */
  recorded(): Promise<void> {
    return this.wakers.until(() => this.finished || !this.recordingOn);
  }

  /**
   * Answers one client from this flight; `headers` gets the length when the whole answer is
   * known before the first byte goes out.
   */
  async sendTo(
    res: ServerResponse,
    headers: (length: number | undefined) => OutgoingHttpHeaders,
  ): Promise<void> {
    const reader: Reader = { sent: 0, chunk: 0, offset: 0 };
    this.readers.add(reader);
    try {
      for (;;) {
        if (res.destroyed) return;
        if (this.phase === 'failed') {
          if (!res.headersSent) throw this.failure;
          res.destroy();
          return;
        }
        if (this.phase === 'holding') {
          await this.wakers.next(res);
          continue;
        }
        const releasable = this.phase === 'done' ? this.received : this.received - 1;
        if (reader.sent < releasable) {
          if (!res.headersSent)
            res.writeHead(200, headers(this.phase === 'done' ? this.received : undefined));
          const piece = this.nextPiece(reader, releasable);
          if (!res.write(piece)) await drained(res);
          this.trim();
          continue;
        }
        if (this.phase === 'done') {
          if (!res.headersSent) res.writeHead(200, headers(this.received));
          res.end();
          return;
        }
        await this.wakers.next(res);
      }
    } finally {
      this.readers.delete(reader);
      if (this.readers.size === 0 && !this.finished) this.source?.abandoned();
      else this.trim();
      this.releaseIfIdle();
    }
  }

  /** One buffer for the whole answer, which the cache keeps: the chunks are copied only once. */
  private joinChunks(): void {
    const whole = Buffer.concat(this.chunks as Buffer[], this.received);
    this.chunks.length = 0;
    this.chunks.push(whole);
    for (const reader of this.readers) {
      reader.chunk = 0;
      reader.offset = reader.sent;
    }
  }

  private releaseIfIdle(): void {
    if (this.sourceReleased || !this.finished || this.readers.size > 0) return;
    this.sourceReleased = true;
    this.source?.released();
  }

  private nextPiece(reader: Reader, releasable: number): Buffer {
    const chunk = this.chunks[reader.chunk] as Buffer;
    const end = Math.min(chunk.length, reader.offset + (releasable - reader.sent));
    const piece = chunk.subarray(reader.offset, end);
    reader.sent += piece.length;
    reader.offset = end;
    if (reader.offset === chunk.length) {
      reader.chunk++;
      reader.offset = 0;
    }
    return piece;
  }

  /** Not recording: frees what every reader has sent, and pauses git while one lags far behind. */
  private trim(): void {
    if (this.recordingOn || this.readers.size === 0) return;
    let slowest = Number.POSITIVE_INFINITY;
    let firstNeeded = Number.POSITIVE_INFINITY;
    for (const reader of this.readers) {
      slowest = Math.min(slowest, reader.sent);
      firstNeeded = Math.min(firstNeeded, reader.chunk);
    }
    for (let i = firstNeeded - 1; i >= 0 && this.chunks[i] !== undefined; i--) this.chunks[i] = undefined;
    const lag = this.received - slowest;
    if (!this.paused && lag > LAG_HIGH_WATER) {
      this.paused = true;
      this.source?.pause();
    } else if (this.paused && lag <= LAG_HIGH_WATER / 2) {
      this.paused = false;
      this.source?.resume();
    }
  }
}
