import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { indexPathForModule, moduleFromIndexPath } from '../core/module-name.js';
import { writeCommit } from '../git/commit-writer.js';
import { gitBlobId, listTree, readBlobs, resolveCommit } from '../git/objects.js';
import { runGit } from '../git/run-git.js';
import { type IndexEntry, parseIndexFile, renderIndexFile } from './index-file.js';

export const SERVED_BRANCH = 'main';
const OID = /^[0-9a-f]{40,64}$/;

/** Module -> version -> entry, as served at one commit. */
export type ModuleEntries = Map<string, Map<string, IndexEntry>>;

export interface IndexSnapshot {
  commit: string;
  modules: ModuleEntries;
}

export interface PublishResult {
  commit: string;
  changed: boolean;
}

/**
 * The index that `moon` clones: a bare git repository whose `main` only moves forward, one
 * commit per change. It holds only `user/<module>.index` files.
 */
export interface ServedIndexOptions {
  /**
   * Called after each new commit of `main` (not after initialize), e.g. to push it
   * ([git] auto_push). It must not throw: the commit is made whatever it does.
   */
  afterCommit?: (commit: string) => Promise<void>;
}

export class ServedIndex {
  constructor(
    readonly gitDir: string,
    private readonly options: ServedIndexOptions = {},
  ) {}

  /** Creates the repository with a first, empty commit, so a fresh registry can be cloned. */
  async initialize(registryName: string): Promise<string> {
    await mkdir(this.gitDir, { recursive: true });
    await runGit(['init', '--bare', '--quiet', `--initial-branch=${SERVED_BRANCH}`, this.gitDir]);
    // A client that read the refs just before a mirror moved `main` still asks for the old
    // commit; it stays reachable because `main` only moves forward.
    await runGit(['--git-dir', this.gitDir, 'config', 'uploadpack.allowReachableSHA1InWant', 'true']);
    const existing = await this.head();
    if (existing) return existing;
    return writeCommit({
      gitDir: this.gitDir,
      branch: SERVED_BRANCH,
      parent: undefined,
      message: `Initialize ${registryName} index\n`,
      changes: new Map(),
      // The same first commit on every machine: replicas started side by side begin one history.
      time: 0,
    });
  }

  async head(): Promise<string | undefined> {
    return resolveCommit(this.gitDir, `refs/heads/${SERVED_BRANCH}`);
  }

  /**
   * Cheap change detection for the server: the loose ref file, else the packed-refs line, else
   * git itself (other ref storage such as reftable).
   */
  async headFast(): Promise<string | undefined> {
    const ref = `refs/heads/${SERVED_BRANCH}`;
    const loose = await readFile(join(this.gitDir, ref), 'utf8').catch(() => undefined);
    const oid = loose?.trim();
    if (oid && OID.test(oid)) return oid;
    const packed = await readFile(join(this.gitDir, 'packed-refs'), 'utf8').catch(() => undefined);
    const line = packed?.split('\n').find((l) => l.endsWith(` ${ref}`));
    const packedOid = line?.split(' ')[0];
    if (packedOid && OID.test(packedOid)) return packedOid;
    return this.head();
  }

  async snapshot(commit?: string): Promise<IndexSnapshot | undefined> {
    const at = commit ?? (await this.head());
    if (!at) return undefined;
    const files = await this.moduleFiles(at);
    const blobs = await readBlobs(this.gitDir, files.values());
    const modules: ModuleEntries = new Map();
    for (const [module, oid] of files) {
      const text = blobs.get(oid)?.toString('utf8') ?? '';
      modules.set(module, parseIndexFile(module, text));
    }
    return { commit: at, modules };
  }

  /**
   * Makes `main` list exactly `desired` (module -> entries in file order) with one new commit,
   * or none when nothing differs. Unchanged files are found by blob id without writing them.
   */
  async publish(desired: Map<string, IndexEntry[]>, message: string): Promise<PublishResult> {
    return this.write(desired, message, true);
  }

  /**
   * Like publish, for the given modules only (an empty list removes the module's file); every
   * other module stays as it is.
   */
  async update(modules: Map<string, IndexEntry[]>, message: string): Promise<PublishResult> {
    return this.write(modules, message, false);
  }

  private async write(
    desired: Map<string, IndexEntry[]>,
    message: string,
    whole: boolean,
  ): Promise<PublishResult> {
    const parent = await this.head();
    const current = parent ? await this.moduleFiles(parent) : new Map<string, string>();
    const changes = new Map<string, Buffer | null>();
    for (const [module, entries] of desired) {
      if (entries.length === 0) continue;
      const content = Buffer.from(renderIndexFile(entries), 'utf8');
      if (current.get(module) !== gitBlobId(content)) changes.set(indexPathForModule(module), content);
    }
    const dropped = whole ? [...current.keys()] : [...desired.keys()].filter((m) => current.has(m));
    for (const module of dropped) {
      if (!desired.get(module)?.length) changes.set(indexPathForModule(module), null);
    }
    if (changes.size === 0 && parent) return { commit: parent, changed: false };
    const commit = await writeCommit({
      gitDir: this.gitDir,
      branch: SERVED_BRANCH,
      parent,
      message,
      changes,
    });
    // Each commit adds a pack; let git consolidate them when its thresholds say so. Refs stay
    // loose so the server's head check remains a file read.
    await runGit([
      '--git-dir',
      this.gitDir,
      '-c',
      'gc.packRefs=false',
      '-c',
      'gc.autoDetach=false',
      'gc',
      '--auto',
      '--quiet',
    ]);
    await this.options.afterCommit?.(commit);
    return { commit, changed: true };
  }

  /** The modules listed at the tip (names only: no file is read). */
  async moduleNames(): Promise<string[]> {
    const head = await this.head();
    return head ? [...(await this.moduleFiles(head)).keys()] : [];
  }

  /** module -> blob id of its index file at `commit`. */
  private async moduleFiles(commit: string): Promise<Map<string, string>> {
    const files = new Map<string, string>();
    for (const [path, oid] of await listTree(this.gitDir, commit)) {
      const module = moduleFromIndexPath(path);
      if (module) files.set(module, oid);
    }
    return files;
  }
}
