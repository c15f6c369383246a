import { randomUUID } from 'node:crypto';
import { describeError, RegistryError } from '../core/errors.js';

/**
 * What a lease needs from the shared store. Every call fails fast with RegistryError
 * 'UNAVAILABLE' while the store does not answer; the lease logic below stays store-agnostic.
 */
export interface LeaseStore {
  /** Takes `name` if nobody holds it (expiring after leaseMs); returns the value it now holds: `token` when we got it, else the holder's. */
  take(name: string, token: string, leaseMs: number): Promise<string>;
  /** Pushes the expiry out by leaseMs if `name` still holds `token`; false once it expired or was taken. */
  extend(name: string, token: string, leaseMs: number): Promise<boolean>;
  /** Frees `name` if it still holds `token`, and tells the waiters of every replica. */
  release(name: string, token: string): Promise<void>;
  /** Resolves when a release of `name` is announced, or after `ms`, whichever comes first. */
  waitForRelease(name: string, ms: number): Promise<void>;
}

export interface LeaseOptions {
  /** How long to wait for a lease another holder has; 0 tries once. */
  waitMs: number;
  /** How long the lease lasts unless renewed; a holder that dies blocks the others this long at most. */
  leaseMs?: number;
}

export const DEFAULT_LEASE_MS = 15_000;
const FIRST_POLL_MS = 25;
const MAX_POLL_MS = 250;

/**
 * Runs `work` holding the lease `name` (see Coordination.withLock). The stored value is the
 * token `${self}|${since}|${uuid}`: unique, so only we can extend or free our lease, and
 * readable, so a waiter that gives up can say who holds it.
 */
export async function withLease<T>(
  store: LeaseStore,
  self: string,
  name: string,
  options: LeaseOptions,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const token = `${self}|${new Date().toISOString()}|${randomUUID()}`;
  const giveUpAt = Date.now() + options.waitMs;
  // Polling is the fallback; a release notice (pub/sub) usually wakes us much sooner. The
  // backoff keeps many waiters from hammering Redis while a long job holds the lease.
  for (let pollMs = FIRST_POLL_MS; ; pollMs = Math.min(pollMs * 2, MAX_POLL_MS)) {
    const holder = await store.take(name, token, leaseMs);
    if (holder === token) break;
    const left = giveUpAt - Date.now();
    if (left <= 0) throw lockedBy(holder, name, options.waitMs);
    await store.waitForRelease(name, Math.min(pollMs, left));
  }

  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let settled = false;
  // A chain of timeouts rather than setInterval, so a slow renewal never overlaps the next.
  // Renewal catches everything: Redis dying mid-lock must abort the work, not crash the process.
  const renew = async (): Promise<void> => {
    try {
      if (!(await store.extend(name, token, leaseMs))) {
        controller.abort(
          new RegistryError('LOCKED', `lost the lease "${name}": it expired or another replica took it`, {
            hint: 'the work stopped before publishing; try again',
          }),
        );
      }
    } catch (error) {
      // Redis restarts forget every lease, so "cannot renew" must count as "may have lost it".
      controller.abort(
        new RegistryError('UNAVAILABLE', `cannot renew the lease "${name}": ${describeError(error)}`, {
          cause: error,
          hint: 'the work stopped before publishing; try again once the coordination service answers',
        }),
      );
    }
    if (!settled && !controller.signal.aborted) schedule();
  };
  const schedule = (): void => {
    timer = setTimeout(() => void renew(), leaseMs / 3);
    timer.unref(); // the work keeps the process alive, not the renewal
  };
  schedule();
  try {
    return await work(controller.signal);
  } finally {
    settled = true;
    clearTimeout(timer);
    // If Redis is down the lease cannot be freed now, but it expires by itself after leaseMs;
    // that must not replace the work's own result or error.
    await store.release(name, token).catch(() => undefined);
  }
}

function lockedBy(holder: string, name: string, waitMs: number): RegistryError {
  const [who = holder, since] = holder.split('|');
  return new RegistryError(
    'LOCKED',
    `${who} holds the lease "${name}"${since ? ` (since ${since})` : ''}; gave up after waiting ${waitMs} ms`,
    { hint: 'wait for it to finish, then try again' },
  );
}
