import { join } from 'node:path';
import type { HostedConfig } from '../config/schema.js';
import { pathExists } from '../fs/path-exists.js';
import type { IndexEntry, IndexWarning } from '../index/index-file.js';
import { type PublishResult, ServedIndex } from '../index/served-index.js';
import { readModuleCatalog, readSourceCatalog, type SourceCatalog } from '../index/source-catalog.js';

/**
 * The index of modules published to this registry: a bare git repository of
 * `user/<module>.index` files, like a fetched source's, so the hosted source is merged by
 * priority like any other. Only publish, yank and deprecate write it (under the registry lock);
 * its archives live in the archive store with everyone else's.
 */
export class HostedIndex {
  private readonly index: ServedIndex;

  constructor(
    readonly config: HostedConfig,
    readonly gitDir: string,
  ) {
    this.index = new ServedIndex(gitDir);
  }

  get name(): string {
    return this.config.name;
  }

  /** The current commit, or undefined while nothing was ever published. */
  async head(): Promise<string | undefined> {
    return (await pathExists(join(this.gitDir, 'HEAD'))) ? this.index.headFast() : undefined;
  }

  /** Everything published, or undefined while nothing was. */
  async catalog(warn?: IndexWarning): Promise<SourceCatalog | undefined> {
    const head = await this.head();
    return head ? this.readCatalog(head, warn) : undefined;
  }

  readCatalog(commit: string, warn?: IndexWarning): Promise<SourceCatalog> {
    return readSourceCatalog(this.name, this.gitDir, commit, warn);
  }

  /** One module's published lines at `commit`, as a catalog of that module alone. */
  readModule(commit: string, module: string): Promise<SourceCatalog> {
    return readModuleCatalog(this.name, this.gitDir, commit, module);
  }

  /** The published modules (names only). */
  async moduleNames(): Promise<string[]> {
    return (await this.head()) ? this.index.moduleNames() : [];
  }

  /** Replaces one module's lines (in file order) with one commit; the repository is made on first use. */
  async writeModule(module: string, entries: IndexEntry[], message: string): Promise<PublishResult> {
    if ((await this.head()) === undefined) await this.index.initialize(`${this.name} (hosted)`);
    return this.index.update(new Map([[module, entries]]), message);
  }
}
