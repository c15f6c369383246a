import { copyFile, mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { syncDirectory, tempPathFor } from './atomic-write.js';

/**
 * Moves a file, also across file systems (a packages/ folder symlinked to a bigger disk): a
 * rename where it can, else a copy to a temp name beside the target, fsync, rename, and only
 * then the source is removed, so a kill at any point leaves a whole file at one place or both.
 */
export async function moveFile(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  try {
    await rename(from, to);
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
  }
  const temp = tempPathFor(to);
  try {
    await copyFile(from, temp);
    const handle = await open(temp, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, to);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDirectory(dirname(to));
  await rm(from);
}
