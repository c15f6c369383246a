import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { DownloadObserver } from '../upstream/archive-download.js';
import { drained, Wakers } from './response-waits.js';

type Phase = 'waiting' | 'streaming' | 'verified' | 'failed';

/**
 * One upstream download that any number of clients read at once (single-flight). Each client
 * gets the bytes as they arrive, at its own pace, but never the last byte before the whole body
 * has been checked: a body that fails verification reaches nobody complete, and the cut
 * connection tells the client it failed. A client that joins late gets what came so far first.
 */
export class SharedDownload implements DownloadObserver {
  private chunks: Buffer[] = [];
  private received = 0;
  private length: number | undefined;
  /** Counts upstream answers: a retry starts the body over, so readers of the old one are cut. */
  private attempt = 0;
  private phase: Phase = 'waiting';
  private failure: unknown;
  private readonly wakers = new Wakers();

  started(length: number | undefined): void {
    this.attempt++;
    this.chunks = [];
    this.received = 0;
    this.length = length;
    this.phase = 'streaming';
    this.wakers.wake();
  }

  data(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.received += chunk.length;
    this.wakers.wake();
  }

  verified(): void {
    this.phase = 'verified';
    this.wakers.wake();
  }

  /** The download gave up; `error` becomes the answer of clients that have no headers yet. */
  fail(error: unknown): void {
    if (this.phase === 'verified') return; // every client has (or gets) the verified bytes
    this.phase = 'failed';
    this.failure = error;
    this.wakers.wake();
  }

  get isVerified(): boolean {
    return this.phase === 'verified';
  }

  /**
   * Answers one client from this download. Headers go out with the first byte, so a download
   * that fails before this client got any byte still becomes a proper answer: its error is
   * thrown. After that, a failure cuts the connection.
   */
  async sendTo(
    req: IncomingMessage,
    res: ServerResponse,
    headers: (length: number | undefined) => OutgoingHttpHeaders,
  ): Promise<void> {
    let attempt: number | undefined;
    let sent = 0;
    let chunkIndex = 0;
    let offset = 0;
    for (;;) {
      if (res.destroyed) return;
      if (this.phase === 'failed') {
        if (!res.headersSent) throw this.failure;
        res.destroy();
        return;
      }
      if (this.phase === 'waiting') {
        await this.wakers.next(res);
        continue;
      }
      if (attempt !== this.attempt) {
        // A retry started the body over: a client that has none of the old one simply follows
        // the new one; one that has some of it can only be cut.
        if (res.headersSent) {
          res.destroy();
          return;
        }
        attempt = this.attempt;
        sent = 0;
        chunkIndex = 0;
        offset = 0;
      }
      if (req.method === 'HEAD') {
        res.writeHead(200, headers(this.length));
        res.end();
        return;
      }
      const releasable = this.phase === 'verified' ? this.received : this.received - 1;
      if (sent < releasable) {
        if (!res.headersSent) res.writeHead(200, headers(this.length));
        const chunk = this.chunks[chunkIndex] as Buffer;
        const end = Math.min(chunk.length, offset + (releasable - sent));
        const piece = chunk.subarray(offset, end);
        sent += piece.length;
        offset = end;
        if (offset === chunk.length) {
          chunkIndex++;
          offset = 0;
        }
        if (!res.write(piece)) await drained(res);
        continue;
      }
      if (this.phase === 'verified') {
        if (!res.headersSent) res.writeHead(200, headers(this.length));
        res.end();
        return;
      }
      await this.wakers.next(res);
    }
  }
}
