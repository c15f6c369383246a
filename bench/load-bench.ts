/**
 * Load benchmark: many clients acting as `moon` at once against a registry holding the whole
 * index snapshot, for a fixed time.
 *
 * Setup. A FakeUpstream (this process, no added latency) serves the full fixture (the real
 * mooncakes.io index, 887 modules, ~6.5k small synthetic archives); a fresh registry mirrors it
 * all (`mirror --full`), then `serve` runs as a child process (its request log to a file).
 *
 * Load. BENCH_CLIENTS workers (200) loop for BENCH_SECONDS (60): each session is what a CI job
 * does with an empty cache: a shallow clone of the index with git (as `moon update` does), then
 * resolving a randomly chosen module at its latest version (minimal version selection over its
 * dependencies, from the index just cloned; parsed once, as every clone has the same commit) and
 * downloading every archive of the result, checking each checksum. All clones and downloads go
 * to the server over loopback; the load generator (git clients, fetch) shares the 2-core
 * machine with it, so the absolute numbers are a floor.
 *
 * Reported: sessions and HTTP requests per second (a clone is two or three git requests, counted
 * as one clone), p50/p99 latency of clones and of archive requests, errors (target 0), the
 * server's peak RSS sampled every 100 ms from /proc (target under 300 MB), and the most
 * `git upload-pack` processes alive at once under it.
 *
 * Env: BENCH_CLIENTS (200), BENCH_SECONDS (60), BENCH_SEED (1). Exits non-zero only on
 * functional failures during set-up; errors under load are counted and reported.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FakeUpstream } from '../test/support/fake-upstream.js';
import { buildFixture } from '../test/support/fixture.js';
import {
  download,
  type RegistryIndex,
  ResolveError,
  readIndex,
  resolve,
  update,
} from '../test/support/moon-client.js';
import { seededRandom } from '../test/support/random.js';
import { BenchFailure, CLI_BIN, envInteger, log, run } from './bench-support.js';

const TARGET_RSS_MIB = 300;

interface Settings {
  clients: number;
  seconds: number;
  seed: number;
}

function percentile(values: number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

async function startServe(
  root: string,
  logFile: string,
): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const logFd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [CLI_BIN, 'serve', '--port', '0'], {
    cwd: root,
    stdio: ['ignore', logFd, 'pipe'],
  });
  closeSync(logFd);
  const exited = new Promise<void>((done) => child.once('close', () => done()));
  const url = await new Promise<string>((done, fail) => {
    let text = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const match = /(http:\/\/127\.0\.0\.1:\d+)/.exec(text);
      if (match?.[1]) done(match[1]);
    });
    child.once('close', (code) =>
      fail(new BenchFailure(`serve exited (${code}) before listening:\n${text}`)),
    );
  });
  return {
    url,
    pid: child.pid as number,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** RSS of one process in MiB, and the `git upload-pack` processes among its children. */
function sample(pid: number): { rssMiB: number; uploadPacks: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
  let uploadPacks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent !== pid) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('upload-pack')) uploadPacks++;
    } catch {
      // the process ended while we looked
    }
  }
  return { rssMiB: rssKiB / 1024, uploadPacks };
}

async function main(): Promise<void> {
  const settings: Settings = {
    clients: envInteger('BENCH_CLIENTS', 200, 1),
    seconds: envInteger('BENCH_SECONDS', 60, 1),
    seed: envInteger('BENCH_SEED', 1, 0),
  };
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'mr-load-bench-'));
  const fixture = await buildFixture();
  const upstream = await FakeUpstream.start({ fixture });
  try {
    const root = path.join(scratch, 'registry');
    const cli = async (args: string[], cwd: string) => {
      const result = await run(process.execPath, [CLI_BIN, ...args], cwd);
      if (result.code !== 0) throw new BenchFailure(`${args.join(' ')} failed:\n${result.stderr}`);
    };
    log('mirroring the whole snapshot ...');
    await cli(['init', root, '--name', 'load-bench'], scratch);
    await cli(['source', 'add', 'up', '--url', upstream.url, '--index-url', upstream.indexUrl], root);
    await cli(['source', 'default', 'up'], root);
    await cli(['source', 'disable', 'mooncakes'], root);
    await cli(['mirror', '--full', '-q'], root);
    const server = await startServe(root, path.join(scratch, 'serve.log'));
    try {
      log(`serving at ${server.url}; warming up one clone ...`);
      const firstHome = path.join(scratch, 'home-first');
      await update(server.url, firstHome);
      const index: RegistryIndex = await readIndex(firstHome);
      const modules = [...index.modules.keys()];

      const clones: number[] = [];
      const archives: number[] = [];
      const errors: string[] = [];
      let sessions = 0;
      let peakRss = 0;
      let peakUploadPacks = 0;
      const sampler = setInterval(() => {
        try {
          const s = sample(server.pid);
          peakRss = Math.max(peakRss, s.rssMiB);
          peakUploadPacks = Math.max(peakUploadPacks, s.uploadPacks);
        } catch {
          // the server is gone: the errors below say so
        }
      }, 100);
      const deadline = performance.now() + settings.seconds * 1000;
      log(`${settings.clients} clients for ${settings.seconds} s ...`);
      const worker = async (id: number) => {
        const pick = seededRandom(settings.seed + id);
        for (let n = 0; performance.now() < deadline; n++) {
          const home = path.join(scratch, `home-${id}-${n}`);
          try {
            const started = performance.now();
            await update(server.url, home, { timeoutMs: 120_000 });
            clones.push(performance.now() - started);
            const module = modules[Math.floor(pick() * modules.length)] as string;
            const versions = [...(index.modules.get(module)?.keys() ?? [])];
            const version = versions[versions.length - 1] as string;
            for (const [dep, depVersion] of resolve(index, { [module]: version })) {
              if (performance.now() >= deadline) break;
              const checksum = index.modules.get(dep)?.get(depVersion)?.checksum ?? '';
              const t = performance.now();
              await download(server.url, dep, depVersion, checksum, { timeoutMs: 60_000 });
              archives.push(performance.now() - t);
            }
            sessions++;
          } catch (error) {
            // A module whose dependencies cannot be resolved is the index's fact, not an error.
            if (!(error instanceof ResolveError))
              errors.push(error instanceof Error ? error.message : String(error));
          } finally {
            await rm(home, { recursive: true, force: true });
          }
        }
      };
      await Promise.all(Array.from({ length: settings.clients }, (_, id) => worker(id)));
      clearInterval(sampler);
      const requests = clones.length + archives.length;
      const ms = (v: number) => `${v.toFixed(1)}ms`;
      console.log(
        `clients=${settings.clients} seconds=${settings.seconds} sessions=${sessions} clones=${clones.length} archive_requests=${archives.length}`,
      );
      console.log(
        `clone p50=${ms(percentile(clones, 0.5))} p99=${ms(percentile(clones, 0.99))}; archive p50=${ms(percentile(archives, 0.5))} p99=${ms(percentile(archives, 0.99))}`,
      );
      for (const message of [...new Set(errors)].slice(0, 5)) console.log(`error: ${message.slice(0, 300)}`);
      const rssOk = peakRss < TARGET_RSS_MIB;
      console.log(`target ${errors.length === 0 ? 'met' : 'missed'}: errors ${errors.length} (target 0)`);
      console.log(
        `target ${rssOk ? 'met' : 'missed'}: server peak RSS ${peakRss.toFixed(1)} MiB (target < ${TARGET_RSS_MIB} MiB)`,
      );
      console.log(
        `RESULT load clients=${settings.clients} rps=${(requests / settings.seconds).toFixed(1)} sessions_per_s=${(sessions / settings.seconds).toFixed(2)} ` +
          `clone_p50=${ms(percentile(clones, 0.5))} clone_p99=${ms(percentile(clones, 0.99))} archive_p50=${ms(percentile(archives, 0.5))} archive_p99=${ms(percentile(archives, 0.99))} ` +
          `errors=${errors.length} peak_rss=${peakRss.toFixed(1)}MiB peak_upload_packs=${peakUploadPacks}`,
      );
    } finally {
      await server.stop();
    }
  } finally {
    await upstream.stop();
    await fixture.cleanup();
    await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
