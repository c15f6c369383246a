/** What both benchmarks need: failures, settings from the environment, child processes, output. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '../test/support/fixture.js';

export const CLI_BIN = path.join(repoRoot, 'bin', 'moonbit-registry');

/** A functional failure: the benchmark's numbers cannot be trusted, so it exits non-zero. */
export class BenchFailure extends Error {}

export function envInteger(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new BenchFailure(`${name} must be an integer >= ${min}`);
  return value;
}

export function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Asynchronous on purpose: the upstream lives in this process and must keep answering. */
export function run(command: string, args: string[], cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        seconds: (performance.now() - started) / 1000,
      }),
    );
  });
}

export function percentile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

export function printTable(rows: string[][]): void {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  '));
}
