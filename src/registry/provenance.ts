import { readFile } from 'node:fs/promises';
import { moduleKey } from '../core/module-name.js';
import { writeFileAtomic } from '../fs/atomic-write.js';

/**
 * Which source each served version came from: `data/state/provenance.json`, keyed by
 * `module@version`. The checksum is recorded too, so a reader can tell whether a record still
 * describes the line being served.
 */
export interface ProvenanceRecord {
  source: string;
  checksum: string;
}

export type Provenance = Map<string, ProvenanceRecord>;

interface ProvenanceFile {
  version: 1;
  entries: Record<string, ProvenanceRecord>;
}

export async function readProvenance(path: string): Promise<Provenance> {
  try {
    const file = JSON.parse(await readFile(path, 'utf8')) as ProvenanceFile;
    return new Map(Object.entries(file.entries ?? {}));
  } catch {
    return new Map();
  }
}

export async function writeProvenance(path: string, provenance: Provenance): Promise<void> {
  const file: ProvenanceFile = { version: 1, entries: Object.fromEntries([...provenance].sort()) };
  await writeFileAtomic(path, `${JSON.stringify(file)}\n`);
}

/** The source that provided module@version with this checksum, if recorded. */
export function sourceOf(provenance: Provenance, module: string, version: string, checksum: string) {
  const record = provenance.get(moduleKey(module, version));
  return record && record.checksum === checksum ? record.source : undefined;
}
