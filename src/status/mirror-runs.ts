import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import lockfile from 'proper-lockfile';
import { z } from 'zod';
import type { RegistryLayout } from '../registry/layout.js';
import { readState, writeState } from './json-state.js';
import type { MirrorRunRecord } from './status-report.js';

/** Runs kept in data/state/mirror-runs.json; the status page shows the newest 20. */
const KEPT_RUNS = 50;

const RunSchema = z.object({
  started_at: z.string(),
  finished_at: z.string(),
  request: z.object({
    patterns: z.array(z.string()),
    full: z.boolean(),
    strict: z.boolean(),
    source: z.string().nullable(),
  }),
  outcome: z.enum(['ok', 'failed', 'interrupted', 'error']),
  downloaded: z.number(),
  already_stored: z.number(),
  failed: z.number(),
  bytes: z.number(),
  error: z.string().nullable(),
}) satisfies z.ZodType<MirrorRunRecord>;

/** The recent runs (a run that does not parse is skipped), and counts of every run ever. */
const LogSchema = z.object({
  runs: z.array(z.unknown()).transform((items) =>
    items.flatMap((item) => {
      const run = RunSchema.safeParse(item);
      return run.success ? [run.data] : [];
    }),
  ),
  totals: z.record(z.string(), z.number().int().nonnegative()),
});

export type MirrorRunLog = z.infer<typeof LogSchema>;

export function readMirrorRunLog(layout: RegistryLayout): Promise<MirrorRunLog> {
  return readState(layout.mirrorRunsFile, LogSchema, { runs: [], totals: {} });
}

/** Newest first. */
export async function readMirrorRuns(layout: RegistryLayout): Promise<MirrorRunRecord[]> {
  return (await readMirrorRunLog(layout)).runs;
}

/**
 * Waiting for the record lock: each holder keeps it for one small read and write, but under load
 * (a loaded disk's fsync, many runs ending together) that takes seconds, and a run given up on is
 * a record lost. So wait as long as holders make progress: up to two minutes, far longer than any
 * live holder needs; a dead holder's lock goes stale after 10 s and is taken over.
 */
const RECORD_LOCK_WAIT_MS = 120_000;

/**
 * The record lock, waiting while another run holds it. Only "held by another" is waited out:
 * any other failure (a read-only or full disk) is thrown at once.
 */
async function lockRecords(path: string): Promise<() => Promise<void>> {
  const deadline = Date.now() + RECORD_LOCK_WAIT_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      return await lockfile.lock(path, { realpath: false, stale: 10_000 });
    } catch (error) {
      const held = (error as NodeJS.ErrnoException).code === 'ELOCKED';
      if (!held || Date.now() > deadline) throw error;
      await delay(Math.min(100, 10 * 1.5 ** attempt) * (0.5 + Math.random()));
    }
  }
}

/**
 * Adds one run. Runs record after they let go of the registry lock (and refused runs never had
 * it), so the read-modify-write takes a lock of its own: without it, runs ending together lose
 * each other's records, and the totals /metrics reports as counters could go down.
 */
export async function recordMirrorRun(layout: RegistryLayout, run: MirrorRunRecord): Promise<void> {
  await mkdir(dirname(layout.mirrorRunsFile), { recursive: true });
  const release = await lockRecords(layout.mirrorRunsFile);
  try {
    const { runs, totals } = await readMirrorRunLog(layout);
    await writeState(layout.mirrorRunsFile, {
      runs: [run, ...runs].slice(0, KEPT_RUNS),
      totals: { ...totals, [run.outcome]: (totals[run.outcome] ?? 0) + 1 },
    });
  } finally {
    await release();
  }
}
