import { join, resolve } from 'node:path';

/**
 * Where everything lives inside a registry folder. Served data (`data/index`, `data/packages`)
 * is kept apart from working data (`data/sources`, `data/tmp`), so the server never sees a
 * half-fetched upstream index or a download in progress.
 */
export interface RegistryLayout {
  root: string;
  configFile: string;
  dataDir: string;
  /** The served index: a bare git repository, branch `main`. */
  indexDir: string;
  /**
   * The index `serve` offers in pull-through mode: every version of every enabled source. Kept
   * apart from indexDir, which lists only stored versions, so mirror mode never advertises what
   * it cannot deliver offline.
   */
  proxyIndexDir: string;
  /** Verified archives: `<module>/<version>/<sha256>.zip`. */
  packagesDir: string;
  /** One bare git repository per source, fetched from upstream. */
  sourcesDir: string;
  /** Each source's editor symbols: `<source>/symbols.zip` and the ETag it came with. */
  symbolsDir: string;
  /**
   * Prebuilt wasm tools, as moon asks for them: `<module>/<version>/<package path>/<name>.wasm`
   * and its `.sha256`, plus what the source answered 404 for.
   */
  assetsDir: string;
  /** The index of modules published here (`[hosted]`): a bare git repository like a source's. */
  hostedIndexDir: string;
  /** Downloads in progress, one folder per process; renamed into packagesDir once verified. */
  tmpDir: string;
  /** Which source each served version came from. */
  provenanceFile: string;
  /** This registry's id (made at `init`) and the bundles it imported (transfer/registry-identity.ts). */
  identityFile: string;
  /** What `mirror` was asked for, so a sync can keep it current. */
  mirrorRequestsFile: string;
  /** The last mirror runs and their summaries, newest first (status page, `status`). */
  mirrorRunsFile: string;
  /** Archive downloads served per hour. */
  downloadsFile: string;
  /** When each module@version's archive and assets were last downloaded (`gc --older-than`). */
  lastDownloadsFile: string;
  /** What the running `serve` knows live (sync schedule, source health), for `status`. */
  serverStateFile: string;
  /**
   * What was taken over from moonbit-registry-tools: its index repository (`index/`) and the
   * archives no source vouched for yet (`packages/<owner>/<name>/<version>.zip`).
   */
  legacyDir: string;
  /** Held by `mirror` (and other writers) while they change the registry. */
  lockTarget: string;
}

/** `dataDir` is `[registry] data_dir`, relative to the registry folder. */
export function registryLayout(root: string, dataDir = 'data'): RegistryLayout {
  const abs = resolve(root);
  return layoutIn(abs, resolve(abs, dataDir));
}

function layoutIn(abs: string, dataDir: string): RegistryLayout {
  return {
    root: abs,
    configFile: join(abs, 'registry.toml'),
    dataDir,
    indexDir: join(dataDir, 'index'),
    proxyIndexDir: join(dataDir, 'proxy-index'),
    packagesDir: join(dataDir, 'packages'),
    sourcesDir: join(dataDir, 'sources'),
    symbolsDir: join(dataDir, 'symbols'),
    assetsDir: join(dataDir, 'assets'),
    hostedIndexDir: join(dataDir, 'hosted', 'index.git'),
    tmpDir: join(dataDir, 'tmp'),
    provenanceFile: join(dataDir, 'state', 'provenance.json'),
    identityFile: join(dataDir, 'state', 'identity.json'),
    mirrorRequestsFile: join(dataDir, 'state', 'mirror-requests.json'),
    mirrorRunsFile: join(dataDir, 'state', 'mirror-runs.json'),
    downloadsFile: join(dataDir, 'state', 'downloads.json'),
    lastDownloadsFile: join(dataDir, 'state', 'last-downloads.json'),
    serverStateFile: join(dataDir, 'state', 'server.json'),
    legacyDir: join(dataDir, 'legacy'),
    lockTarget: join(dataDir, 'registry'),
  };
}

export function sourceIndexDir(layout: RegistryLayout, sourceName: string): string {
  return join(layout.sourcesDir, sourceName, 'index.git');
}
