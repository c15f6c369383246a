import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
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
 * Adds one run. Runs record after they let go of the registry lock (and refused runs never had
 * it), so the read-modify-write takes a lock of its own: without it, runs ending together lose
 * each other's records, and the totals /metrics reports as counters could go down.
 */
export async function recordMirrorRun(layout: RegistryLayout, run: MirrorRunRecord): Promise<void> {
  await mkdir(dirname(layout.mirrorRunsFile), { recursive: true });
  const release = await lockfile.lock(layout.mirrorRunsFile, {
    realpath: false,
    stale: 10_000,
    retries: { retries: 50, minTimeout: 20, maxTimeout: 200 },
  });
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
