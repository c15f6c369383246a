import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { writeFileAtomic } from '../fs/atomic-write.js';

/**
 * Small JSON files under data/state: written whole and atomically; read leniently, since a file
 * from another version, or one a user edited, must never stop the registry (it is only facts
 * for reports). A file that does not parse reads as `fallback`.
 */
export async function readState<T>(path: string, schema: z.ZodType<T>, fallback: T): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return fallback;
  }
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : fallback;
  } catch {
    return fallback;
  }
}

export function writeState(path: string, value: unknown): Promise<void> {
  return writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}
