/** What a `serve` request log (pino JSON lines, one per request) says about how it went. */
import { readFile } from 'node:fs/promises';
import { percentile } from './bench-support.js';

export interface ServeLogSummary {
  requests: number;
  /** Responses by status code ("aborted" for those cut before they finished). */
  statuses: Map<string, number>;
  /** Distinct messages of warn and error lines, with how often each came. */
  problems: Map<string, number>;
  /** The server's own time (request to response end, as logged) of each git request, ms. */
  gitMs: number[];
  /** The same for every other request (archives). */
  otherMs: number[];
}

const WARN_LEVEL = 40;

function parse(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** The log from byte `from` on (0: all of it). */
export async function summarizeServeLog(file: string, from = 0): Promise<ServeLogSummary> {
  const summary: ServeLogSummary = {
    requests: 0,
    statuses: new Map(),
    problems: new Map(),
    gitMs: [],
    otherMs: [],
  };
  for (const line of (await readFile(file)).subarray(from).toString('utf8').split('\n')) {
    const entry = parse(line);
    if (!entry) continue;
    if (entry.msg === 'request') {
      summary.requests++;
      bump(summary.statuses, entry.aborted ? 'aborted' : String(entry.status));
      const times = String(entry.url).startsWith('/git/') ? summary.gitMs : summary.otherMs;
      if (typeof entry.ms === 'number') times.push(entry.ms);
    }
    if (typeof entry.level === 'number' && entry.level >= WARN_LEVEL)
      bump(summary.problems, String(entry.msg));
  }
  return summary;
}

/** `12345 requests (200: 12000, 503: 345); warnings: "git upload-pack failed" x3` */
export function describeServeLog(summary: ServeLogSummary): string {
  const counts = (map: Map<string, number>, quote: boolean) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .map(([key, n]) => (quote ? `"${key}" x${n}` : `${key}: ${n}`))
      .join(', ');
  const problems = summary.problems.size > 0 ? counts(summary.problems, true) : 'none';
  return `${summary.requests} requests (${counts(summary.statuses, false)}); warnings and errors: ${problems}`;
}

/** `git requests p50=12ms p99=58ms, other requests p50=3ms p99=40ms` */
export function describeServeTimes(summary: ServeLogSummary): string {
  const times = (values: number[]) => `p50=${percentile(values, 0.5)}ms p99=${percentile(values, 0.99)}ms`;
  return `git requests ${times(summary.gitMs)}, archive requests ${times(summary.otherMs)}`;
}
