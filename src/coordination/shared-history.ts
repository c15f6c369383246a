import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError, RegistryError } from '../core/errors.js';
import { createIndexBundle, hasCommit, isAncestor, unbundleIndex } from '../git/bundle.js';
import { resolveCommit } from '../git/objects.js';
import { runGit } from '../git/run-git.js';
import type { BlobStore } from '../store/blob/blob-store.js';
import { readBlobText, withLocalCopy } from '../store/blob/local-copy.js';
import type { Coordination } from './redis-coordination.js';

/** A git repository every replica keeps a copy of: the served, pull-through and hosted indexes. */
export interface SharedRepo {
  /** Short name, in keys and messages: `index`, `proxy-index`, `hosted`. */
  name: string;
  gitDir: string;
}

const BRANCH = 'refs/heads/main';
/** How long "the bucket has no head for this repository" is believed. */
const ABSENT_HEAD_MEMORY_MS = 5000;

export interface CatchUp {
  /** The shared heads seen, by repository name. */
  heads: Map<string, string>;
  /** The repositories whose local copy moved. */
  moved: string[];
  /**
   * Those whose local copy is off the shared line (a commit a killed writer never shared) and
   * was left alone: only a holder of the registry lock may put it back.
   */
  diverged: string[];
}
/** Where replicas hear of a new head: `<repo> <commit>`. */
export const HISTORY_CHANNEL = 'history';

/**
 * One index history for every replica (PROTOCOL.md 2: a client whose requests bounce between
 * replicas must never see `main` jump sideways). The authoritative head of each shared repository
 * is a Redis key, and the bucket holds a git bundle of it (`history/<repo>/<commit>.bundle`):
 *
 * - a writer holds the cluster lock, so there is one writer at a time; it first brings its copies
 *   to the shared heads (`catchUp`), commits on top of them, then `share`s: bundle to the bucket,
 *   head moved in Redis by compare-and-set, a notice on pub/sub;
 * - every other replica moves its copy to the shared head when told, and before it answers a
 *   request that reads the index (`catchUp`), so what one replica published is served by all.
 *
 * Deterministic commits alone could not do this: two replicas syncing at different moments commit
 * different content on the same parent, and their histories fork. With one writer and one head,
 * every replica serves commits of one line, each a descendant of the last.
 */
export class SharedHistory {
  /** Catch-ups run one at a time: two would race to move the same ref. */
  private turn: Promise<unknown> = Promise.resolve();
  /** When each repository was last found without a head in the bucket either. */
  private readonly noDurableHead = new Map<string, number>();
  /** This replica holds the writer lease and has copies ahead of the shared heads. */
  private writing = false;

  constructor(
    private readonly coordination: Coordination,
    private readonly blobs: BlobStore,
    private readonly repos: readonly SharedRepo[],
    private readonly tmpDir: string,
  ) {}

  /** The shared heads, by repository; a repository nobody shared yet is absent. */
  async sharedHeads(): Promise<Map<string, string>> {
    const heads = new Map<string, string>();
    for (const repo of this.repos) {
      const head = (await this.coordination.get(headKey(repo))) ?? (await this.seedFromBucket(repo));
      if (head) heads.set(repo.name, head);
    }
    return heads;
  }

  /**
   * Redis forgets everything when it restarts without persistence: the bucket's copy of the head
   * then says where the history is (so no replica commits on an older one), and goes back into
   * Redis. A repository never shared has none; that answer is kept a few seconds, so index reads
   * do not each cost a bucket request.
   */
  private async seedFromBucket(repo: SharedRepo): Promise<string | undefined> {
    const checked = this.noDurableHead.get(repo.name);
    if (checked !== undefined && Date.now() - checked < ABSENT_HEAD_MEMORY_MS) return undefined;
    const head = (await readBlobText(this.blobs, durableHeadKey(repo)))?.trim();
    if (!head || !/^[0-9a-f]{40,64}$/.test(head)) {
      this.noDurableHead.set(repo.name, Date.now());
      return undefined;
    }
    this.noDurableHead.delete(repo.name);
    await this.coordination.compareAndSet(headKey(repo), undefined, head);
    return (await this.coordination.get(headKey(repo))) ?? head;
  }

  /**
   * Moves each local copy to its shared head, fetching the bundle when the commit is not here yet.
   * Returns the shared heads it saw (for `share`) and the repositories it moved, or throws
   * UNAVAILABLE when Redis or the bucket does not answer.
   */
  catchUp(): Promise<CatchUp> {
    return this.inTurn(() => this.follow(false));
  }

  /**
   * The writer's catch-up: after it, and until `finishWriting`, this replica's copies are ahead
   * of the shared heads, and a reader's catch-up must not move them back.
   */
  startWriting(): Promise<CatchUp> {
    return this.inTurn(async () => {
      const caught = await this.follow(true);
      this.writing = true;
      return caught;
    });
  }

  /**
   * Shares what was committed since `startWriting`, and ends it. A writer that failed (or lost
   * its lease, `share` false) or whose share failed puts its copies back at the heads it started
   * from: a commit nobody else has must not be served, or clients would see it vanish.
   */
  async finishWriting(before: Map<string, string>, share: boolean): Promise<void> {
    try {
      if (!share) throw new RegistryError('LOCKED', 'the writer did not finish');
      await this.share(before);
    } catch (error) {
      for (const repo of this.repos) {
        const head = before.get(repo.name);
        if (head) await this.moveTo(repo, head, true).catch(() => undefined);
      }
      if (share) throw error;
    } finally {
      this.writing = false;
    }
  }

  private inTurn(step: () => Promise<CatchUp>): Promise<CatchUp> {
    const run = this.turn.then(step);
    this.turn = run.catch(() => undefined);
    return run;
  }

  /**
   * `force` (the writer, holding the locks): every copy goes to its shared head. Otherwise only
   * forward: a copy ahead of the shared head belongs to a writer in this folder (another
   * process, a command) that is about to share it or put it back.
   */
  private async follow(force: boolean): Promise<CatchUp> {
    if (this.writing) return { heads: new Map(), moved: [], diverged: [] }; // we are the one ahead
    const heads = await this.sharedHeads();
    const moved: string[] = [];
    const diverged: string[] = [];
    for (const repo of this.repos) {
      const head = heads.get(repo.name);
      if (!head) continue;
      const outcome = await this.moveTo(repo, head, force);
      if (outcome === 'moved') moved.push(repo.name);
      if (outcome === 'diverged') diverged.push(repo.name);
    }
    return { heads, moved, diverged };
  }

  /**
   * Shares what this writer committed since `before` (the heads `catchUp` returned): a bundle of
   * each changed repository, then its head. Called while holding the cluster lock.
   */
  private async share(before: Map<string, string>): Promise<void> {
    for (const repo of this.repos) {
      const head = await resolveCommit(repo.gitDir, BRANCH).catch(() => undefined);
      const previous = before.get(repo.name);
      if (!head || head === previous) continue;
      await this.upload(repo, head);
      if (!(await this.coordination.compareAndSet(headKey(repo), previous, head))) {
        throw new RegistryError(
          'LOCKED',
          `the shared head of ${repo.name} moved while this replica held the cluster lock; its commit ${head.slice(0, 12)} was not shared`,
        );
      }
      // Shared from here on. The bucket's copy of the head only matters after Redis lost its
      // own, and the next share writes it again: its failure must not fail the writer.
      await this.blobs.putBytes(durableHeadKey(repo), Buffer.from(`${head}\n`)).catch(() => undefined);
      await this.coordination.publish(HISTORY_CHANNEL, `${repo.name} ${head}`).catch(() => undefined);
      await this.prune(repo, new Set([head, previous])).catch(() => undefined);
    }
  }

  private async upload(repo: SharedRepo, head: string): Promise<void> {
    await mkdir(this.tmpDir, { recursive: true });
    const file = join(this.tmpDir, `${repo.name}-${randomBytes(6).toString('hex')}.bundle`);
    try {
      await createIndexBundle(repo.gitDir, file, undefined);
      await this.blobs.putFile(bundleKey(repo, head), file);
    } finally {
      await rm(file, { force: true });
    }
  }

  private async moveTo(
    repo: SharedRepo,
    head: string,
    force: boolean,
  ): Promise<'same' | 'moved' | 'diverged'> {
    const local = await resolveCommit(repo.gitDir, BRANCH).catch(() => undefined);
    if (local === head) return 'same';
    if (!(await hasCommit(repo.gitDir, head))) await this.fetchBundle(repo, head);
    if (!force && local && !(await isAncestor(repo.gitDir, local, head))) return 'diverged';
    // Compare-and-swap on the local ref: a writer of this process that moved it meanwhile wins.
    await runGit(['--git-dir', repo.gitDir, 'update-ref', BRANCH, head, local ?? ''], {
      describe: `moving ${repo.name} to the shared head`,
    });
    return 'moved';
  }

  private async fetchBundle(repo: SharedRepo, head: string): Promise<void> {
    await withLocalCopy(this.blobs, bundleKey(repo, head), this.tmpDir, async (file) => {
      if (!file) {
        throw new RegistryError(
          'UNAVAILABLE',
          `the shared head of ${repo.name} (${head.slice(0, 12)}) has no bundle in ${this.blobs.description}`,
        );
      }
      await mkdir(repo.gitDir, { recursive: true });
      await runGit(['init', '--bare', '--quiet', '--initial-branch=main', repo.gitDir]);
      // Objects only: `main` moves by the compare-and-swap in moveTo.
      const tip = await unbundleIndex(repo.gitDir, file).catch((error: unknown) => {
        throw new RegistryError(
          'GIT',
          `cannot take ${repo.name} from the shared bundle: ${describeError(error)}`,
        );
      });
      if (tip !== head) {
        throw new RegistryError(
          'GIT',
          `the shared bundle of ${repo.name} ${head.slice(0, 12)} holds ${tip.slice(0, 12)}`,
        );
      }
    });
  }

  /** Keeps the bundles of the new head and the one before (a replica may be reading it). */
  private async prune(repo: SharedRepo, keep: Set<string | undefined>): Promise<void> {
    for await (const blob of this.blobs.list(`history/${repo.name}/`)) {
      if (!blob.key.endsWith('.bundle')) continue;
      const commit = blob.key.slice(blob.key.lastIndexOf('/') + 1).replace(/\.bundle$/, '');
      if (!keep.has(commit)) await this.blobs.delete(blob.key).catch(() => undefined);
    }
  }
}

function headKey(repo: SharedRepo): string {
  return `head:${repo.name}`;
}

function durableHeadKey(repo: SharedRepo): string {
  return `history/${repo.name}/HEAD`;
}

function bundleKey(repo: SharedRepo, commit: string): string {
  return `history/${repo.name}/${commit}.bundle`;
}
