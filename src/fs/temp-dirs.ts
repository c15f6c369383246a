import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Downloads in progress live in `data/tmp/<pid>/`, one folder per process, so a `mirror` and a
 * pull-through `serve` can work side by side and each can clear what dead processes left.
 */
export async function processTempDir(tmpRoot: string): Promise<{ path: string; remove(): Promise<void> }> {
  const path = join(tmpRoot, String(process.pid));
  await mkdir(path, { recursive: true });
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/** Removes every entry of `tmpRoot` that no living process owns (leftovers of killed runs). */
export async function clearDeadTemps(tmpRoot: string): Promise<void> {
  const names = await readdir(tmpRoot).catch(() => [] as string[]);
  await Promise.all(
    names
      .filter((name) => {
        const pid = /^\d+$/.test(name) ? Number(name) : undefined;
        return pid === undefined || (pid !== process.pid && !isProcessAlive(pid));
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
