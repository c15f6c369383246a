import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import lockfile from 'proper-lockfile';
import { RegistryError } from '../core/errors.js';

interface LockOwner {
  pid: number;
  host: string;
  what: string;
  since: string;
}

/**
 * One writer at a time per registry. proper-lockfile keeps the lock fresh while we run and
 * treats it as stale once nobody refreshes it; we also record who holds it, so a lock left by
 * a process on this machine that no longer exists is taken over at once instead of blocking
 * the next run.
 */
export async function acquireRegistryLock(target: string, what: string): Promise<() => Promise<void>> {
  await mkdir(dirname(target), { recursive: true });
  const lockDir = `${target}.lock`;
  const take = () => lockfile.lock(target, { realpath: false, stale: 20_000, update: 5_000 });
  let release: () => Promise<void>;
  try {
    release = await take();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error;
    const owner = await readOwner(lockDir);
    if (!owner || owner.host !== hostname() || isAlive(owner.pid)) {
      const who = owner
        ? `another ${owner.what} (pid ${owner.pid} on ${owner.host}, started ${owner.since})`
        : 'another process';
      throw new RegistryError('LOCKED', `${who} is running on this registry; ${what} not started`, {
        hint: `wait for it to finish, then try again (lock: ${lockDir})`,
      });
    }
    await rm(lockDir, { recursive: true, force: true }); // its owner died without releasing it
    release = await take();
  }
  // The owner file lives inside the lock folder, so it exists only while the lock does.
  const ownerFile = join(lockDir, 'owner.json');
  const owner: LockOwner = { pid: process.pid, host: hostname(), what, since: new Date().toISOString() };
  await writeFile(ownerFile, JSON.stringify(owner));
  return async () => {
    await rm(ownerFile, { force: true });
    await release();
  };
}

async function readOwner(lockDir: string): Promise<LockOwner | undefined> {
  try {
    return JSON.parse(await readFile(join(lockDir, 'owner.json'), 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
