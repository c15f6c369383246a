import { copyFile, mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { syncDirectory, tempPathFor } from './atomic-write.js';

/**
 * Moves a file, also across file systems (a packages/ folder symlinked to a bigger disk): a
 * rename where it can, else a copy to a temp name beside the target, fsync, rename, and only
 * then the source is removed, so a kill at any point leaves a whole file at one place or both.
 */
export async function moveFile(from: string, to: string): Promise<void> {
  try {
    await renameInto(from, to);
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

/**
 * Renames `from` to `to`, making `to`'s folder first. `gc` removes folders it emptied (under
 * the registry lock, which a serving process does not hold), so the folder can vanish between
 * the mkdir and the rename: then both are done again.
 */
export async function renameInto(from: string, to: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      // mkdir -p fails too when a folder it just made goes before the next one is made in it.
      await mkdir(dirname(to), { recursive: true });
      await rename(from, to);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || attempt === 3) throw error;
    }
  }
}
