import type { ServerResponse } from 'node:http';

/**
 * Waiting on behalf of one client of a shared body (shared-download.ts, upload-pack-flight.ts):
 * every wait also ends when the client goes away, so a gone client never waits forever.
 */

/** Readers waiting for the next event of a shared body. */
export class Wakers {
  private readonly waiting = new Set<() => void>();

  /** Wakes every reader waiting now. */
  wake(): void {
    for (const waker of [...this.waiting]) waker();
  }

  /** Resolves at the next `wake`, or when the client goes away. */
  next(res: ServerResponse): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.waiting.delete(done);
        res.off('close', done);
        resolve();
      };
      this.waiting.add(done);
      res.once('close', done);
    });
  }

  /** Resolves at the first `wake` after which `ready()` holds. */
  async until(ready: () => boolean): Promise<void> {
    while (!ready()) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.waiting.delete(done);
          resolve();
        };
        this.waiting.add(done);
      });
    }
  }
}

/** Resolves when the client can take more, or is gone. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
