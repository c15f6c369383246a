import { access } from 'node:fs/promises';

/** Whether anything (file, folder, link target) is at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
