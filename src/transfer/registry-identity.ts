import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { RegistryError } from '../core/errors.js';
import { writeFileAtomic } from '../fs/atomic-write.js';

/**
 * Who a registry is, kept in `data/state/identity.json` rather than registry.toml: a copied or
 * hand-edited config must not make two registries one, and the id travels with the data it
 * names. `imports` remembers, per registry imported from, the bundle source it feeds and the
 * last commit imported (the `--since` to ask that registry for next).
 */
const ImportRecordSchema = z.object({
  id: z.string().min(1),
  name: z.string(),
  source: z.string(),
  commit: z.string(),
  at: z.string(),
});

const IdentitySchema = z.object({
  version: z.literal(1),
  id: z.string().min(1),
  created: z.string(),
  imports: z.array(ImportRecordSchema).default([]),
});

export type ImportRecord = z.infer<typeof ImportRecordSchema>;
export type RegistryIdentity = z.infer<typeof IdentitySchema>;

export async function readIdentity(path: string): Promise<RegistryIdentity | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return IdentitySchema.parse(JSON.parse(text));
  } catch {
    throw new RegistryError('CONFIG', `${path} is damaged: not a registry identity`, {
      hint: 'restore it from a backup; without it this registry cannot tell which bundles it may import',
    });
  }
}

/** The registry's identity, made now if it has none (registries created before ids existed). */
export async function ensureIdentity(path: string): Promise<RegistryIdentity> {
  const existing = await readIdentity(path);
  if (existing) return existing;
  const identity: RegistryIdentity = {
    version: 1,
    id: randomUUID(),
    created: new Date().toISOString(),
    imports: [],
  };
  await writeIdentity(path, identity);
  return identity;
}

export async function writeIdentity(path: string, identity: RegistryIdentity): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(identity, null, 2)}\n`);
}

/** The identity with `record` as the latest import from its registry (first imports keep their place). */
export function withImport(identity: RegistryIdentity, record: ImportRecord): RegistryIdentity {
  const imports = identity.imports.some((r) => r.id === record.id)
    ? identity.imports.map((r) => (r.id === record.id ? record : r))
    : [...identity.imports, record];
  return { ...identity, imports };
}
