import cliProgress from 'cli-progress';
import { formatBytes } from '../core/format-bytes.js';
import type { MirrorReporter } from '../registry/mirror.js';
import type { TransferProgress } from '../transfer/transfer-progress.js';

export type ProgressMode = 'bar' | 'lines' | 'quiet';

export function progressMode(options: { quiet?: boolean }): ProgressMode {
  if (options.quiet) return 'quiet';
  return process.stderr.isTTY ? 'bar' : 'lines';
}

/** What the mirror command needs beyond the reporting itself, to answer a signal. */
export interface CliReporter extends MirrorReporter {
  /** Downloads launched and not yet finished, failed or stopped. */
  inFlight(): number;
  /** A line shown whatever the mode (also with -q), above the bar if there is one. */
  notice(message: string): void;
}

/** Progress on stderr, so `--json` keeps stdout machine-readable. */
export function createReporter(mode: ProgressMode): CliReporter {
  const log = (text: string) => process.stderr.write(`${text}\n`);
  let total = 0;
  let started = 0;
  let done = 0;
  let failed = 0;
  let stopped = 0;
  let bytes = 0;
  let startedAt = 0;
  let nextLine = 0;
  let bar: cliProgress.SingleBar | undefined;
  const rate = () => formatBytes(bytes / Math.max(0.001, (performance.now() - startedAt) / 1000));
  const payload = () => ({ size: formatBytes(bytes), speed: `${rate()}/s`, failed });
  const step = () => {
    if (bar) bar.update(done + failed, payload());
    else if (mode === 'lines' && (done + failed >= nextLine || done + failed === total)) {
      log(
        `downloaded ${done}/${total} archives, ${formatBytes(bytes)}, ${rate()}/s${failed ? `, ${failed} failed` : ''}`,
      );
      nextLine = done + failed + Math.max(1, Math.ceil(total / 20));
    }
  };
  const above = (text: string) => {
    if (bar) bar.stop();
    log(text);
    if (bar) bar.start(total, done + failed, payload());
  };
  return {
    inFlight: () => started - done - failed - stopped,
    notice: above,
    info: (message) => {
      if (mode !== 'quiet') log(message);
    },
    warn: (message) => above(`warning: ${message}`),
    downloadsStarted: (count) => {
      total = count;
      startedAt = performance.now();
      nextLine = Math.max(1, Math.ceil(total / 20));
      if (count === 0) {
        if (mode !== 'quiet') log('nothing to download: every selected archive is already here');
        return;
      }
      if (mode === 'bar') {
        bar = new cliProgress.SingleBar(
          {
            format:
              'archives {bar} {value}/{total} | {size} | {speed} | {failed} failed | eta {eta_formatted}',
            stream: process.stderr,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(count, 0, payload());
      } else if (mode === 'lines') {
        log(`downloading ${count} archives`);
      }
    },
    downloadStarted: () => {
      started++;
    },
    downloadFinished: (_label, size) => {
      done++;
      bytes += size;
      step();
    },
    downloadRetrying: (label, attempt, reason) => {
      if (mode === 'lines') log(`retry ${attempt} for ${label}: ${reason}`);
    },
    downloadFailed: (_label, reason) => {
      failed++;
      if (mode !== 'bar') log(`failed: ${reason}`);
      step();
    },
    downloadStopped: (label, reason) => {
      stopped++;
      if (mode === 'lines') log(`stopped ${label} (interrupted; not retried): ${reason}`);
    },
    downloadsFinished: () => {
      bar?.stop();
      bar = undefined;
    },
  };
}

/** Export and import progress on stderr: a byte bar on a terminal, a line per 5% otherwise. */
export function createTransferProgress(mode: ProgressMode, verb: string): TransferProgress {
  const log = (text: string) => process.stderr.write(`${text}\n`);
  let bar: cliProgress.SingleBar | undefined;
  let total = 0;
  let done = 0;
  let nextLine = 0;
  return {
    info: (message) => {
      if (mode !== 'quiet') log(message);
    },
    start: (files, bytes) => {
      total = bytes;
      done = 0;
      nextLine = bytes / 20;
      if (mode === 'bar') {
        bar = new cliProgress.SingleBar(
          {
            format: `${verb} {bar} {percentage}% | {size} of {total_size} | ${files} files | eta {eta_formatted}`,
            stream: process.stderr,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(Math.max(1, bytes), 0, { size: formatBytes(0), total_size: formatBytes(bytes) });
      } else if (mode === 'lines') log(`${verb} ${files} files, ${formatBytes(bytes)}`);
    },
    advance: (bytes) => {
      done += bytes;
      if (bar) bar.update(done, { size: formatBytes(done) });
      else if (mode === 'lines' && done >= nextLine && total > 0) {
        log(`${verb} ${Math.floor((100 * done) / total)}%, ${formatBytes(done)}`);
        nextLine = done + total / 20;
      }
    },
    finish: () => {
      bar?.stop();
      bar = undefined;
    },
  };
}
