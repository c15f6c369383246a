/**
 * Replays a recorded HTTP exchange (bench/recording-proxy.ts) from many concurrent keep-alive
 * connections, checking every answer, for a fixed time: the server's throughput for that
 * exchange without the cost of the client that first made it.
 */
import { Pool } from 'undici';
import { percentile } from './bench-support.js';
import { PktLineMeter } from './pkt-line-meter.js';
import type { Exchange } from './recording-proxy.js';

export interface ReplayOptions {
  connections: number;
  seconds: number;
  /** For each request's headers and for the gaps in its body. */
  timeoutMs: number;
}

export interface ReplayResult {
  /** Sequences whose every answer had the recorded status and length. */
  sequences: number;
  /** Sequences cut short by a wrong or failed answer. */
  errors: number;
  /** A few distinct error messages. */
  errorSamples: string[];
  /** From the start to the end of the last sequence (begun before the deadline). */
  seconds: number;
  /** Latency of a whole sequence, ms. */
  p50Ms: number;
  p99Ms: number;
}

/**
 * Sends one recorded request; throws unless the answer has the recorded status and length: the
 * length of its pkt-line content when the recorded answer was pkt-lines (git frames the same
 * pack differently each time), else its length in bytes.
 */
async function send(pool: Pool, exchange: Exchange): Promise<void> {
  const response = await pool.request({
    method: exchange.method as 'GET' | 'POST',
    path: exchange.path,
    headers: exchange.headers,
    body: exchange.method === 'GET' ? undefined : exchange.body,
  });
  let bytes = 0;
  const meter = new PktLineMeter();
  for await (const chunk of response.body) {
    bytes += (chunk as Buffer).length;
    meter.push(chunk as Buffer);
  }
  const [got, recorded, unit] =
    exchange.contentBytes === undefined
      ? [bytes, exchange.responseBytes, 'bytes']
      : [meter.result(), exchange.contentBytes, 'content bytes'];
  if (response.statusCode !== exchange.status || got !== recorded) {
    throw new Error(
      `${exchange.method} ${exchange.path}: status ${response.statusCode}, ${got ?? 'no pkt-lines'} ${unit} ` +
        `(recorded: ${exchange.status}, ${recorded} ${unit})`,
    );
  }
}

/** `connections` clients, each sending `sequence` in order, again and again, for `seconds`. */
export async function replay(
  baseUrl: string,
  sequence: Exchange[],
  opts: ReplayOptions,
): Promise<ReplayResult> {
  const pool = new Pool(baseUrl, {
    connections: opts.connections,
    pipelining: 1,
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
  });
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  const started = performance.now();
  const deadline = started + opts.seconds * 1000;
  const client = async () => {
    while (performance.now() < deadline) {
      const t = performance.now();
      try {
        for (const exchange of sequence) await send(pool, exchange);
        latencies.push(performance.now() - t);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        errors.set(message, (errors.get(message) ?? 0) + 1);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.connections }, client));
  } finally {
    await pool.close();
  }
  return {
    sequences: latencies.length,
    errors: [...errors.values()].reduce((a, b) => a + b, 0),
    errorSamples: [...errors.keys()].slice(0, 5),
    seconds: (performance.now() - started) / 1000,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
  };
}
