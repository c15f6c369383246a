/**
 * A request body kept for git. Its memory counts against a shared budget (the caller's
 * `onRelease` gives it back) until git has been handed the bytes, or until it is known that git
 * never will be (a cache hit, a request that joined another's git run, a failure): then the
 * body is let go, so an answer that takes long to send does not hold its request's body.
 */
export class HeldBody {
  readonly bytes: number;
  private buffer: Buffer | undefined;

  constructor(
    buffer: Buffer,
    private readonly onRelease: () => void = () => {},
  ) {
    this.bytes = buffer.length;
    this.buffer = buffer;
  }

  /** The bytes, for git; the body is let go. */
  take(): Buffer {
    const buffer = this.buffer ?? Buffer.alloc(0);
    this.drop();
    return buffer;
  }

  /** Lets the body go unread; calling it again does nothing. */
  drop(): void {
    if (this.buffer === undefined) return;
    this.buffer = undefined;
    this.onRelease();
  }
}
