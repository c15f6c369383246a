import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import lockfile from 'proper-lockfile';
import { RegistryError } from '../core/errors.js';

/**
 * One writer at a time per registry. proper-lockfile keeps the lock fresh while we run and
 * treats it as stale when a killed process stops refreshing it, so a crash never leaves the
 * registry locked for good.
 */
export async function acquireRegistryLock(target: string, what: string): Promise<() => Promise<void>> {
  await mkdir(dirname(target), { recursive: true });
  try {
    return await lockfile.lock(target, { realpath: false, stale: 20_000, update: 5_000 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') {
      throw new RegistryError(
        'LOCKED',
        `another process is changing this registry (${target}.lock); ${what} not started`,
        {
          hint: 'wait for the running mirror to finish, then try again',
        },
      );
    }
    throw error;
  }
}
