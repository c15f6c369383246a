import { hostname } from 'node:os';
import { z } from 'zod';
import type { RegistryLayout } from '../registry/layout.js';
import { readState, writeState } from './json-state.js';

/**
 * What only the running `serve` knows (its sync schedule, each source's health), written to
 * data/state/server.json at start, after each sync and every minute, so `status` can report it
 * without talking to the server.
 */
const ServerStateSchema = z.object({
  pid: z.number().int(),
  hostname: z.string(),
  started_at: z.string(),
  updated_at: z.string(),
  stopped_at: z.string().nullable(),
  url: z.string(),
  mode: z.enum(['mirror', 'proxy']),
  sync: z.object({
    auto: z.boolean(),
    interval: z.string().nullable(),
    next_run: z.string().nullable(),
    last_run: z
      .object({ at: z.string(), ok: z.boolean(), changed: z.boolean(), error: z.string().nullable() })
      .nullable(),
  }),
  // Absent in files written before the cache existed.
  git_cache: z
    .object({
      max_bytes: z.number(),
      bytes: z.number(),
      entries: z.number(),
      hits: z.number(),
      shared: z.number(),
      misses: z.number(),
      evictions: z.number(),
      warmups: z.number(),
    })
    .optional(),
  sources: z.array(
    z.object({
      name: z.string(),
      state: z.enum(['ok', 'failing', 'unknown', 'disabled']),
      last_sync: z.string().nullable(),
      last_error: z.string().nullable(),
      index_commit: z.string().nullable(),
    }),
  ),
});

export type ServerState = z.infer<typeof ServerStateSchema>;
export type LiveSource = ServerState['sources'][number];

export function readServerState(layout: RegistryLayout): Promise<ServerState | undefined> {
  return readState<ServerState | undefined>(layout.serverStateFile, ServerStateSchema, undefined);
}

export function writeServerState(layout: RegistryLayout, state: ServerState): Promise<void> {
  return writeState(layout.serverStateFile, state);
}

/** Whether the server that wrote `state` still runs: not stopped, and its process is alive here. */
export function isServerRunning(state: ServerState | undefined): boolean {
  if (!state || state.stopped_at !== null || state.hostname !== hostname()) return false;
  try {
    process.kill(state.pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
