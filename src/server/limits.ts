import type { RegistryConfig } from '../config/schema.js';
import { parseDuration } from '../core/duration.js';

/** What one client may cost the server: `[server]` limits in registry.toml, in bytes and ms. */
export interface ServerLimits {
  /** `git upload-pack` processes at once; further requests wait in a FIFO line. */
  maxGitProcesses: number;
  /** Requests waiting for git; one more gets 503 at once. */
  maxGitQueue: number;
  /** A request that waited this long for git gets 503. */
  gitQueueTimeoutMs: number;
  /** Bytes of an upload-pack request body, counted as sent and again after gunzip. */
  maxRequestBody: number;
  /** Memory for cached upload-pack answers (server/upload-pack-cache.ts); 0: no cache. */
  uploadPackCacheBytes: number;
  /** Bytes of the request line plus headers (Node answers 431 beyond). */
  maxHeaderSize: number;
  /** The request line and headers must arrive within this (Node answers 408). */
  headersTimeoutMs: number;
  /** The whole request, body included, must arrive within this. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** A connection that neither sends nor reads for this long is cut (frees git held by it). */
  idleTimeoutMs: number;
  /** On shutdown, responses in flight get this long before their connections are cut. */
  shutdownTimeoutMs: number;
  /** A fresh pull-through server: how long a request that needs the index waits for the first one. */
  firstIndexWaitMs: number;
}

/** The same values as the `[server]` defaults in config/schema.ts (a unit test keeps them equal). */
export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  maxGitProcesses: 8,
  maxGitQueue: 64,
  gitQueueTimeoutMs: 30_000,
  maxRequestBody: 10 * 1024 * 1024,
  uploadPackCacheBytes: 64 * 1024 * 1024,
  maxHeaderSize: 16 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 300_000,
  shutdownTimeoutMs: 10_000,
  firstIndexWaitMs: 20_000,
};

/** The limits a validated `[server]` table asks for (its durations parse). */
export function serverLimits(server: RegistryConfig['server']): ServerLimits {
  const ms = (text: string) => parseDuration(text) ?? 0;
  return {
    maxGitProcesses: server.max_git_processes,
    maxGitQueue: server.max_git_queue,
    gitQueueTimeoutMs: ms(server.git_queue_timeout),
    maxRequestBody: server.max_request_body,
    uploadPackCacheBytes: server.upload_pack_cache_bytes,
    maxHeaderSize: server.max_header_size,
    headersTimeoutMs: ms(server.headers_timeout),
    requestTimeoutMs: ms(server.request_timeout),
    keepAliveTimeoutMs: ms(server.keep_alive_timeout),
    idleTimeoutMs: ms(server.idle_timeout),
    shutdownTimeoutMs: ms(server.shutdown_timeout),
    firstIndexWaitMs: ms(server.first_index_wait),
  };
}
