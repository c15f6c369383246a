import type { StorageConfig } from '../../config/schema.js';
import { expandVariables } from '../../upstream/credentials.js';
import type { BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

/**
 * The blob store `[storage]` names: data/ itself, or a bucket. S3 credentials are resolved
 * here, when the store opens, so `${VAR}`s never reach a file or a message.
 */
export function openBlobStore(storage: StorageConfig, dataDir: string, timeoutMs = 30_000): BlobStore {
  if (storage.type === 'fs') return new FsBlobStore(dataDir);
  const where = { owner: '[storage]', key: '[storage]' };
  const expand = (value: string) => expandVariables(value, '', process.env, where);
  return new S3BlobStore({
    ...(storage.endpoint ? { endpoint: storage.endpoint } : {}),
    region: storage.region,
    bucket: storage.bucket ?? '',
    prefix: storage.prefix,
    forcePathStyle: storage.force_path_style,
    ...(storage.access_key_id && storage.secret_access_key
      ? {
          credentials: {
            accessKeyId: expand(storage.access_key_id),
            secretAccessKey: expand(storage.secret_access_key),
          },
        }
      : {}),
    timeoutMs,
  });
}
