import type { RegistryConfig } from '../config/schema.js';
import type { RegistryLayout } from '../registry/layout.js';
import type { BlobStore } from '../store/blob/blob-store.js';
import { expandVariables } from '../upstream/credentials.js';
import { type Coordination, connectCoordination } from './redis-coordination.js';
import { SharedHistory } from './shared-history.js';

/**
 * What a registry with `[coordination] redis_url` shares with its other replicas: the Redis
 * connection and the index history. Opened on first use (a command that never writes never
 * connects) and once per registry folder per process.
 */
export interface Cluster {
  coordination: Coordination;
  history: SharedHistory;
}

/** Replicas share this registry's data through Redis (`[coordination] redis_url`). */
export function isClustered(config: RegistryConfig): boolean {
  return config.coordination.redis_url !== undefined;
}

/** Held by a writer across every replica: publishes, yanks, syncs, mirror runs, gc. */
export const WRITER_LEASE = 'registry-writer';

const opened = new Map<string, Promise<Cluster>>();
const openers = new Map<string, () => Promise<Cluster>>();

/** Called when a registry opens; `lockTarget` names the registry (RegistryLayout.lockTarget). */
export function registerCluster(layout: RegistryLayout, redisUrl: string, blobs: BlobStore): void {
  if (openers.has(layout.lockTarget)) return;
  openers.set(layout.lockTarget, async () => {
    const url = expandVariables(redisUrl, '', process.env, {
      owner: '[coordination]',
      key: '[coordination] redis_url',
    });
    // Keys per store: two registries sharing one Redis (each with its own bucket or prefix) must
    // not share leases or heads.
    const coordination = await connectCoordination(url, {
      keyPrefix: `moonbit-registry:${blobs.description}:`,
    });
    const repos = [
      { name: 'index', gitDir: layout.indexDir },
      { name: 'proxy-index', gitDir: layout.proxyIndexDir },
      { name: 'hosted', gitDir: layout.hostedIndexDir },
    ];
    return { coordination, history: new SharedHistory(coordination, blobs, repos, layout.tmpDir) };
  });
}

/** The registry's cluster, connecting on first use; undefined for a registry of one process. */
export function clusterFor(lockTarget: string): Promise<Cluster> | undefined {
  const existing = opened.get(lockTarget);
  if (existing) return existing;
  const open = openers.get(lockTarget);
  if (!open) return undefined;
  const cluster = open();
  opened.set(lockTarget, cluster);
  cluster.catch(() => opened.delete(lockTarget));
  return cluster;
}

/** Closes every connection, so that a command's process can exit. */
export async function closeClusters(): Promise<void> {
  const all = [...opened.values()];
  opened.clear();
  await Promise.all(all.map(async (cluster) => (await cluster.catch(() => undefined))?.coordination.close()));
}
