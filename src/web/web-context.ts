import type { ServedSnapshot } from '../server/index-cache.js';
import type { StatusReport } from '../status/status-report.js';

/** What the web UI reads; the server builds it from its own context (see server-web-context). */
export interface WebContext {
  registryName: string;
  /** The URL clients use (`[server] base_url`, else the server's own); read per request. */
  readonly publicUrl: string;
  mode: 'mirror' | 'proxy';
  snapshot(): Promise<ServedSnapshot>;
  /** The source a served line came from. */
  sourceOf(module: string, version: string, checksum: string): Promise<string | undefined>;
  /** Whether the archive is stored here; in proxy mode the others are fetched on request. */
  isStored(module: string, version: string, checksum: string): Promise<boolean>;
  status(): Promise<StatusReport>;
}
