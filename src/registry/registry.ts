import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { RegistryConfig, SourceConfig } from '../config/schema.js';
import { type ConfigFile, loadConfigFile } from '../config/toml-file.js';
import { registerCluster } from '../coordination/cluster.js';
import { RegistryError } from '../core/errors.js';
import { HostedIndex } from '../hosted/hosted-index.js';
import { ServedIndex } from '../index/served-index.js';
import { type ArchiveStore, createArchiveStore } from '../store/archive-store.js';
import { type AssetStore, createAssetStore } from '../store/asset-store.js';
import type { BlobStore } from '../store/blob/blob-store.js';
import { openBlobStore } from '../store/blob/open-blob-store.js';
import { autoPushHook } from './index-remote.js';
import { type RegistryLayout, registryLayout } from './layout.js';
import { prepareDataDir } from './legacy-data.js';

/** An opened registry folder: its config, its layout and its served data. */
export interface Registry {
  layout: RegistryLayout;
  configFile: ConfigFile;
  config: RegistryConfig;
  servedIndex: ServedIndex;
  /** Where archives, prebuilt wasm and symbols live: data/ or a bucket (`[storage]`). */
  blobs: BlobStore;
  store: ArchiveStore;
  /** Prebuilt wasm tools, in the same blob store as the archives. */
  assets: AssetStore;
  /** Modules published to this registry (`[hosted]`). */
  hosted: HostedIndex;
}

export interface OpenOptions {
  /** What opening did: a data folder made or taken over. */
  notice?: (message: string) => void;
  /** What went wrong later without failing the change: a failed auto_push. */
  warn?: (message: string) => void;
}

/**
 * Opens a registry folder. A registry.toml without its data folder (written by hand, or
 * brought from moonbit-registry-tools) gets one on first use, and moonbit-registry-tools' data
 * folder is taken over (registry/legacy-data.ts).
 */
export async function openRegistry(dir: string, options: OpenOptions = {}): Promise<Registry> {
  const root = resolve(dir);
  const configPath = registryLayout(root).configFile;
  try {
    await access(configPath);
  } catch {
    throw new RegistryError('CONFIG', `${root} is not a registry (no registry.toml)`, {
      hint: 'run `moonbit-registry init` there, or pass -d/--dir with a registry folder',
    });
  }
  const configFile = await loadConfigFile(configPath);
  const { config } = configFile;
  const layout = registryLayout(root, config.registry.data_dir);
  const ignore = () => undefined;
  await prepareDataDir(layout, config.registry.name, options.notice ?? ignore);
  const blobs = openBlobStore(config.storage, layout.dataDir, config.mirror.timeout_seconds * 1000);
  if (config.coordination.redis_url) registerCluster(layout, config.coordination.redis_url, blobs);
  return {
    layout,
    configFile,
    config,
    servedIndex: new ServedIndex(layout.indexDir, {
      afterCommit: autoPushHook(config, layout, options.warn ?? ignore),
    }),
    blobs,
    store: createArchiveStore(blobs),
    assets: createAssetStore(blobs),
    hosted: new HostedIndex(configFile.config.hosted, layout.hostedIndexDir),
  };
}

/** Enabled sources, highest priority (lowest number) first; file order breaks ties. */
export function enabledSources(config: RegistryConfig): SourceConfig[] {
  return config.sources
    .map((source, order) => ({ source, order }))
    .filter(({ source }) => source.enabled)
    .sort((a, b) => a.source.priority - b.source.priority || a.order - b.order)
    .map(({ source }) => source);
}

export function findSource(config: RegistryConfig, name: string): SourceConfig {
  const source = config.sources.find((s) => s.name === name);
  if (!source) {
    const known = config.sources.map((s) => s.name).join(', ') || 'none';
    throw new RegistryError('NOT_FOUND', `unknown source "${name}" (configured: ${known})`, {
      hint: 'see `moonbit-registry source list`',
    });
  }
  return source;
}
