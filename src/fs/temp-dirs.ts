import { mkdir, readdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';

/**
 * Downloads in progress live in `data/tmp/<host>-<pid>/`, one folder per process, so a `mirror`
 * and a pull-through `serve` can work side by side, even from two machines or containers that
 * share `data/`, and each can clear what dead processes of its own machine left.
 */
export async function processTempDir(tmpRoot: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = join(tmpRoot, `${hostname()}-${process.pid}`);
  await mkdir(path, { recursive: true });
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/**
 * Removes what killed processes of this machine left in `tmpRoot`. Folders of other machines
 * are left alone: whether their process lives cannot be told from here.
 */
export async function clearDeadTemps(tmpRoot: string): Promise<void> {
  const names = await readdir(tmpRoot).catch(() => [] as string[]);
  const here = hostname();
  await Promise.all(
    names
      .filter((name) => {
        const owner = /^(.+)-(\d+)$/.exec(name);
        if (!owner) return true; // not a process folder: a leftover of an older layout
        const pid = Number(owner[2]);
        return owner[1] === here && pid !== process.pid && !isProcessAlive(pid);
      })
      .map((name) => rm(join(tmpRoot, name), { recursive: true, force: true })),
  );
}

/** Whether a process with this id exists on this machine (EPERM: it does, but is not ours). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
