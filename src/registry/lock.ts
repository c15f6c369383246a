import { mkdir, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import lockfile from 'proper-lockfile';
import { clusterFor, WRITER_LEASE } from '../coordination/cluster.js';
import { describeError, RegistryError } from '../core/errors.js';
import { removeStaleTemps, writeFileAtomic } from '../fs/atomic-write.js';
import { isProcessAlive } from '../fs/temp-dirs.js';

/** How long a lock may stay without an owner file before it counts as abandoned. */
const OWNERLESS_GRACE_MS = 5000;

interface LockOwner {
  pid: number;
  host: string;
  what: string;
  since: string;
  /** Held for seconds only (serve's index sync): others wait for it instead of giving up. */
  brief?: boolean;
}

export interface LockOptions {
  /** This holder keeps the lock only briefly (see LockOwner.brief). */
  brief?: boolean;
  /** How long to wait for a brief holder to finish; 0 gives up at once. */
  waitForBriefMs?: number;
}

export interface RegistryLock {
  /** Throws if another process took the lock from us (then we must not publish). */
  assertHeld(): void;
  release(): Promise<void>;
}

/**
 * One writer at a time per registry. proper-lockfile keeps the lock folder fresh while we run
 * and treats it as stale once nobody refreshes it. Beside it we record who holds it, so a lock
 * left by a process of this machine that no longer exists is taken over at once instead of
 * blocking the next run. The owner file is removed before the lock is, so a reader that finds
 * no owner file always backs off.
 */
export async function acquireRegistryLock(
  target: string,
  what: string,
  options: LockOptions = {},
): Promise<RegistryLock> {
  await mkdir(dirname(target), { recursive: true });
  const lockDir = `${target}.lock`;
  const ownerFile = `${target}.owner.json`;
  let compromised: Error | undefined;
  const take = () =>
    lockfile.lock(target, {
      realpath: false,
      stale: 20_000,
      update: 5_000,
      onCompromised: (error) => {
        compromised = error;
      },
    });
  const waitUntil = Date.now() + (options.waitForBriefMs ?? 0);
  let release: () => Promise<void>;
  let ownerlessSince: number | undefined;
  for (;;) {
    try {
      release = await take();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw unwritable(error, what, lockDir);
      const owner = await readOwner(ownerFile);
      const alive = owner && (owner.host !== hostname() || isProcessAlive(owner.pid));
      // No owner file: a holder between taking the lock and recording itself (or between the
      // two steps of releasing it), which takes milliseconds; or one killed right there. Wait a
      // little when waiting is allowed; a lock still unclaimed after that was abandoned.
      ownerlessSince = owner ? undefined : (ownerlessSince ?? Date.now());
      const abandoned = !owner && Date.now() - (ownerlessSince ?? Date.now()) >= OWNERLESS_GRACE_MS;
      const briefly = alive ? owner.brief === true : !owner && !abandoned;
      if (briefly && Date.now() < waitUntil) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        continue;
      }
      if (alive || (!owner && !abandoned)) throw lockedError(owner, what, lockDir);
      await rm(ownerFile, { force: true }); // its owner died without releasing it
      await rm(lockDir, { recursive: true, force: true });
      try {
        release = await take();
        break;
      } catch {
        throw lockedError(undefined, what, lockDir); // someone else took it over first
      }
    }
  }
  // A holder killed while writing its owner file left the temp file of that write.
  await removeStaleTemps(dirname(ownerFile));
  const owner: LockOwner = {
    pid: process.pid,
    host: hostname(),
    what,
    since: new Date().toISOString(),
    ...(options.brief ? { brief: true } : {}),
  };
  await writeFileAtomic(ownerFile, JSON.stringify(owner));
  // Replicas of one registry on other hosts: one writer across all of them too.
  let cluster: ClusterHold | undefined;
  try {
    cluster = await holdClusterLock(target, options.waitForBriefMs ?? 0);
  } catch (error) {
    await rm(ownerFile, { force: true });
    await release().catch(() => undefined);
    throw error;
  }
  return {
    assertHeld: () => {
      if (cluster?.signal.aborted) {
        throw new RegistryError(
          'LOCKED',
          `lost the cluster lock (${describeError(cluster.signal.reason)}); ${what} stopped before publishing`,
        );
      }
      if (compromised) {
        throw new RegistryError(
          'LOCKED',
          `lost the registry lock (${compromised.message}); ${what} stopped before publishing`,
        );
      }
    },
    release: async () => {
      try {
        await cluster?.release(); // shares this writer's commits with the other replicas
      } finally {
        await rm(ownerFile, { force: true });
        await release().catch(() => undefined); // already gone if it was compromised
      }
    },
  };
}

interface ClusterHold {
  signal: AbortSignal;
  release(): Promise<void>;
}

/**
 * With `[coordination]`, the writer lease of every replica, held until release. Taking it brings
 * this replica's indexes to the shared heads; releasing it shares what was committed meanwhile
 * (coordination/shared-history.ts), so each writer starts where the last one ended.
 */
async function holdClusterLock(target: string, waitMs: number): Promise<ClusterHold | undefined> {
  const opening = clusterFor(target);
  if (!opening) return undefined;
  const cluster = await opening;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let held: Promise<void> = Promise.resolve();
  const signal = await new Promise<AbortSignal>((resolve, reject) => {
    held = cluster.coordination.withLock(WRITER_LEASE, { waitMs }, async (signal) => {
      const { heads } = await cluster.history.startWriting();
      resolve(signal);
      await finished;
      await cluster.history.finishWriting(heads, !signal.aborted);
      if (signal.aborted) throw signal.reason;
    });
    held.catch(reject);
  });
  return {
    signal,
    release: async () => {
      finish();
      await held;
    },
  };
}

/** The lock could not even be tried: say that the data folder must be writable, and where. */
function unwritable(error: unknown, what: string, lockDir: string): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== 'EROFS' && code !== 'EACCES' && code !== 'EPERM' && code !== 'ENOSPC') return error;
  return new RegistryError(
    'IO',
    `cannot take the registry lock ${lockDir}: ${describeError(error)}; ${what} not started`,
    {
      hint: 'mirror, index rebuild and verify write to the data folder: it must be writable and have free space',
      cause: error,
    },
  );
}

function lockedError(owner: LockOwner | undefined, what: string, lockDir: string): RegistryError {
  const who = owner
    ? `another ${owner.what} (pid ${owner.pid} on ${owner.host}, started ${owner.since})`
    : 'another process';
  return new RegistryError('LOCKED', `${who} is running on this registry; ${what} not started`, {
    hint: `wait for it to finish, then try again (lock: ${lockDir})`,
  });
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

/** Per lock target: the turn of this process's writers (see withRegistryLock). */
const turns = new Map<string, Promise<void>>();

/**
 * Runs `work` holding the registry lock. Writers of one process (a server's concurrent
 * publishes) first take turns among themselves, so they neither poll the lock folder against
 * each other nor give up on a line of brief holders; other processes are met at the lock.
 */
export async function withRegistryLock<T>(
  target: string,
  what: string,
  options: LockOptions,
  work: (lock: RegistryLock) => Promise<T>,
): Promise<T> {
  const before = turns.get(target) ?? Promise.resolve();
  let done: () => void = () => undefined;
  const mine = new Promise<void>((resolve) => {
    done = resolve;
  });
  const queue = before.then(() => mine);
  turns.set(target, queue);
  await before;
  try {
    const lock = await acquireRegistryLock(target, what, options);
    try {
      return await work(lock);
    } finally {
      await lock.release();
    }
  } finally {
    done();
    if (turns.get(target) === queue) turns.delete(target);
  }
}
