import type { IndexSnapshot, ServedIndex } from '../index/served-index.js';

/** What the server answers from: the snapshot of the commit `main` pointed at when asked. */
export interface ServedSnapshot {
  /** Undefined while the index has no commit yet. */
  commit: string | undefined;
  modules: IndexSnapshot['modules'];
}

const EMPTY: ServedSnapshot = { commit: undefined, modules: new Map() };

/**
 * Keeps the parsed snapshot of the served index and follows `main`. Each call reads the ref
 * (one small file), so a mirror's commit is seen by the next request. Commits are immutable and
 * the ref moves by atomic rename, so a snapshot is always consistent, at worst one commit old.
 */
export class IndexCache {
  private current: ServedSnapshot = EMPTY;
  private currentGeneration = 0;
  private nextGeneration = 0;
  /** The load in progress, shared by every request that saw the same head. */
  private loading: { commit: string; promise: Promise<ServedSnapshot> } | undefined;
  private headRead: Promise<string | undefined> | undefined;
  /** The same for reads after a refresh. */
  private refreshedRead: Promise<string | undefined> | undefined;

  constructor(
    private readonly servedIndex: ServedIndex,
    /** Brings the local index up to date first (a replica following the shared history). */
    private readonly refresh?: () => Promise<void>,
  ) {}

  /**
   * `local` skips the refresh: for a reader that will ask again with it when what it looks for
   * is not there (an archive request: its line rarely changes, so most need no round trip).
   */
  async snapshot(options: { local?: boolean } = {}): Promise<ServedSnapshot> {
    const head = await this.readHead(options.local !== true);
    if (head === undefined) return EMPTY;
    if (this.current.commit === head) return this.current;
    if (this.loading?.commit === head) return this.loading.promise;
    const generation = ++this.nextGeneration;
    const promise = this.load(head, generation).finally(() => {
      if (this.loading?.promise === promise) this.loading = undefined;
    });
    this.loading = { commit: head, promise };
    return promise;
  }

  /** The commit `main` points at now (undefined before the first). */
  head(): Promise<string | undefined> {
    return this.readHead();
  }

  /**
   * Requests arriving while the ref file is being read share that read: under load one read
   * serves many requests, and none sees a head older than one read in flight when it came.
   */
  private readHead(refresh = true): Promise<string | undefined> {
    if (!refresh || !this.refresh) return this.readLocalHead();
    if (!this.refreshedRead) {
      // A refresh that fails (Redis down) leaves the local copy to be served as it is.
      this.refreshedRead = this.refresh()
        .catch(() => undefined)
        .then(() => this.readLocalHead())
        .finally(() => {
          this.refreshedRead = undefined;
        });
    }
    return this.refreshedRead;
  }

  private readLocalHead(): Promise<string | undefined> {
    if (!this.headRead) {
      this.headRead = this.servedIndex.headFast().finally(() => {
        this.headRead = undefined;
      });
    }
    return this.headRead;
  }

  private async load(commit: string, generation: number): Promise<ServedSnapshot> {
    const loaded = await this.servedIndex.snapshot(commit);
    const snapshot: ServedSnapshot = loaded ? { commit: loaded.commit, modules: loaded.modules } : EMPTY;
    // Loads can overlap when `main` moves twice quickly; a slow older one must not win.
    if (generation > this.currentGeneration) {
      this.current = snapshot;
      this.currentGeneration = generation;
    }
    return snapshot;
  }
}
