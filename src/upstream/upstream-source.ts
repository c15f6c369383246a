import { access, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LRUCache } from 'lru-cache';
import type { SourceConfig } from '../config/schema.js';
import { isHttpSource } from '../config/source-location.js';
import type { AssetRef } from '../core/asset-path.js';
import { describeError, RegistryError } from '../core/errors.js';
import { writeFileAtomic } from '../fs/atomic-write.js';
import { resolveCommit } from '../git/objects.js';
import { gitAuthRefused, gitConfigEnv, runGit } from '../git/run-git.js';
import {
  fetchGitSource,
  type GitSourceRepository,
  type PackedGitArchive,
  packGitArchive,
} from '../git-source/git-source-fetch.js';
import type { ArchiveLimits } from '../hosted/module-archive.js';
import type { IndexWarning } from '../index/index-file.js';
import { readSourceCatalog, type SourceCatalog } from '../index/source-catalog.js';
import { sourceArchiveUrl, sourceAssetUrl, sourceSymbolsUrl } from './archive-location.js';
import { authorizationHeader, headerSecrets, redact } from './credentials.js';

export interface SourceTimeouts {
  /** To open a connection. */
  connectMs: number;
  /** For an answer, and between two pieces of a body (also git's stall limit). */
  readMs: number;
}

/** Where a source's fetched index is kept in its local repository. */
export const FETCHED_REF = 'refs/heads/main';

/**
 * When the index was last fetched, next to its repository (git fetch writes no FETCH_HEAD here):
 * `status` reports it without a running server.
 */
export function fetchStampPath(gitDir: string): string {
  return join(dirname(gitDir), 'fetched-at');
}
/** Recorded in the fetched copy, so a source whose URL changed is not served from an old copy. */
export const INDEX_URL_KEY = 'moonbit-registry.indexurl';

/**
 * One configured upstream: where its index and archives are, and how to authenticate. Its
 * index is fetched into its own bare repository (`data/sources/<name>/index.git`), outside the
 * served one, and refreshed with `git fetch` so later runs transfer only what is new.
 */
export class UpstreamSource {
  private authValue: string | undefined | null = null;
  /**
   * A git source's archives packed by its last index fetches, by checksum: a mirror packs each
   * new tag for its line and then wants its archive at once. Bounded; a miss packs again.
   */
  private readonly recentPacks = new LRUCache<string, Buffer>({
    maxSize: 32 * 1024 * 1024,
    sizeCalculation: (bytes) => Math.max(1, bytes.length),
  });

  constructor(
    readonly config: SourceConfig,
    readonly gitDir: string,
    readonly timeouts: SourceTimeouts,
    /** What an archive a git source packs may cost (its limits as a publish). */
    private readonly packLimits?: ArchiveLimits,
  ) {}

  get name(): string {
    return this.config.name;
  }

  /** Whether the source answers HTTP (archives, prebuilt wasm, symbols): see isHttpSource. */
  get hasHttpService(): boolean {
    return isHttpSource(this.config);
  }

  /** Request headers for this source only; resolving them may fail on a missing variable. */
  headers(): Record<string, string> {
    if (this.authValue === null) this.authValue = authorizationHeader(this.config.auth, this.name);
    return this.authValue ? { authorization: this.authValue } : {};
  }

  archiveUrl(module: string, version: string): string {
    return sourceArchiveUrl(this.config, module, version);
  }

  assetUrl(ref: AssetRef): string {
    return sourceAssetUrl(this.config, ref);
  }

  /** This source's symbols.zip; ask archiveHeaders(url) for its credentials. */
  get symbolsUrl(): string {
    return sourceSymbolsUrl(this.config);
  }

  /**
   * Headers for an archive request: credentials only when the URL is on the source's own
   * origin (its URL or index URL), never for a CDN named by package_url_pattern or for
   * download.mooncakes.io.
   */
  archiveHeaders(url: string): Record<string, string> {
    const origin = new URL(url).origin;
    const own = [this.config.url, this.config.index_url].some((u) => new URL(u).origin === origin);
    return own ? this.headers() : {};
  }

  /** Strips this source's secret from text bound for the terminal or a log. */
  redact(text: string): string {
    return redact(text, headerSecrets(this.authValue ?? undefined));
  }

  /** Fetches the upstream index; returns the fetched commit. `warn` hears of skipped git tags. */
  async fetchIndex(warn: (message: string) => void = () => undefined): Promise<string> {
    if (this.config.type === 'bundle') return this.importedCommit();
    if (this.config.type === 'git') return this.fetchRepository(warn);
    await this.ensureRepository();
    try {
      await runGit(
        [
          '--git-dir',
          this.gitDir,
          'fetch',
          '--progress',
          '--no-tags',
          '--no-write-fetch-head',
          this.config.index_url,
          `+${FETCHED_REF}:${FETCHED_REF}`,
        ],
        this.gitFetchOptions(),
      );
    } catch (error) {
      throw this.fetchFailure(this.config.index_url, 'the index', error);
    }
    const commit = await this.fetchedCommit();
    if (!commit) throw new RegistryError('UPSTREAM', `source "${this.name}": the index has no main branch`);
    await writeFileAtomic(fetchStampPath(this.gitDir), `${new Date().toISOString()}\n`);
    return commit;
  }

  /**
   * A bundle source's index moves only by `import`: "fetching" it is reading what was imported
   * last, so sync and mirror keep serving it offline and never reach for its placeholder URL.
   */
  private async importedCommit(): Promise<string> {
    const commit = await this.fetchedCommit();
    if (!commit) {
      throw new RegistryError(
        'UPSTREAM',
        `source "${this.name}" is fed by bundles and none was imported yet`,
        {
          hint: 'run `moonbit-registry import FILE` with a bundle from that registry',
        },
      );
    }
    return commit;
  }

  /** Whether this source's archives are packed here from its repository (a git source). */
  get packsArchives(): boolean {
    return this.config.type === 'git';
  }

  /** A git source's archive of module@version, packed from the commit its line was made from. */
  async packArchive(module: string, version: string, checksum: string): Promise<PackedGitArchive> {
    const recent = this.recentPacks.get(checksum);
    // Keyed by its own sha256, so these are the bytes the line names whatever module asks.
    if (recent) return { kind: 'packed', bytes: recent };
    return packGitArchive(this.gitRepository(), module, version, checksum);
  }

  private gitRepository(): GitSourceRepository {
    if (!this.packLimits || this.config.type !== 'git') {
      throw new RegistryError('CONFIG', `source "${this.name}" is not a git source with archive limits`);
    }
    return {
      name: this.name,
      refPattern: this.config.ref_pattern,
      path: this.config.path,
      indexDir: this.gitDir,
      limits: this.packLimits,
    };
  }

  /** A git source: its tags fetched and packed, its index written here (git-source/). */
  private async fetchRepository(warn: (message: string) => void): Promise<string> {
    const gitUrl = this.config.git_url;
    if (!gitUrl) throw new RegistryError('CONFIG', `source "${this.name}": a git source needs git_url`);
    await this.ensureRepository();
    const commit = await fetchGitSource({
      ...this.gitRepository(),
      branch: FETCHED_REF.replace('refs/heads/', ''),
      fetchTags: async (repo) => {
        try {
          await runGit(
            [
              '--git-dir',
              repo,
              'fetch',
              '--quiet',
              '--force',
              '--prune',
              '--no-write-fetch-head',
              gitUrl,
              '+refs/tags/*:refs/tags/*',
            ],
            this.gitFetchOptions(),
          );
        } catch (error) {
          throw this.fetchFailure(gitUrl, 'the repository', error);
        }
      },
      warn,
      onPacked: (checksum, bytes) => this.recentPacks.set(checksum, bytes),
    });
    await writeFileAtomic(fetchStampPath(this.gitDir), `${new Date().toISOString()}\n`);
    return commit;
  }

  /** The last fetched commit, if this source was ever fetched. */
  async fetchedCommit(): Promise<string | undefined> {
    if (!(await this.hasRepository())) return undefined;
    return resolveCommit(this.gitDir, FETCHED_REF);
  }

  async readCatalog(commit: string, warn?: IndexWarning): Promise<SourceCatalog> {
    return readSourceCatalog(this.name, this.gitDir, commit, warn);
  }

  /** A repository for this source's index: kept if it holds a copy of its index URL, else made anew. */
  private async ensureRepository(): Promise<void> {
    if (await this.hasRepository()) return;
    // No copy yet, or a copy of another URL (the source was re-added or edited): start over.
    await rm(this.gitDir, { recursive: true, force: true });
    await mkdir(this.gitDir, { recursive: true });
    await runGit(['init', '--bare', '--quiet', '--initial-branch=main', this.gitDir]);
    await runGit(['--git-dir', this.gitDir, 'config', INDEX_URL_KEY, this.config.index_url]);
  }

  /** How every `git fetch` from this source runs: its credentials, and its read timeout. */
  private gitFetchOptions() {
    const config: Array<[string, string]> = [
      // Stall detection inside git too, in case a proxy keeps the connection alive.
      ['http.lowSpeedLimit', '1'],
      ['http.lowSpeedTime', String(Math.ceil(this.timeouts.readMs / 1000))],
    ];
    const { authorization } = this.headers();
    if (authorization) config.push(['http.extraHeader', `Authorization: ${authorization}`]);
    return { env: gitConfigEnv(config), idleTimeoutMs: this.timeouts.readMs, describe: 'git fetch' };
  }

  /** A failed `git fetch` of `what` from `url`, said without the source's secret. */
  private fetchFailure(url: string, what: string, error: unknown): RegistryError {
    const reason = this.redact(describeError(error));
    const auth = gitAuthRefused(reason);
    return new RegistryError(
      auth ? 'AUTH' : 'UPSTREAM',
      `source "${this.name}" (${url}): cannot fetch ${what}: ${reason}`,
      {
        hint: auth
          ? 'check the [sources.auth] credentials for this source'
          : 'check the URL and that the host is reachable',
      },
    );
  }

  /** Whether a fetched copy of this source's current index URL is here. */
  private async hasRepository(): Promise<boolean> {
    try {
      await access(`${this.gitDir}/HEAD`);
      const { stdout } = await runGit(['--git-dir', this.gitDir, 'config', '--get', INDEX_URL_KEY]);
      return stdout.toString('utf8').trim() === this.config.index_url;
    } catch {
      return false;
    }
  }
}
