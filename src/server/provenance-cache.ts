import { stat } from 'node:fs/promises';
import { type Provenance, readProvenance } from '../registry/provenance.js';

/**
 * provenance.json, re-read only when its mtime or size changed. It is replaced atomically by
 * writers, so a read sees either the old or the new file.
 */
export class ProvenanceCache {
  private cached: { stamp: string; provenance: Promise<Provenance> } | undefined;

  constructor(private readonly path: string) {}

  async get(): Promise<Provenance> {
    let stamp: string;
    try {
      const info = await stat(this.path);
      stamp = `${info.mtimeMs}:${info.size}:${info.ino}`;
    } catch {
      return new Map();
    }
    if (this.cached?.stamp !== stamp) this.cached = { stamp, provenance: readProvenance(this.path) };
    return this.cached.provenance;
  }
}
