/**
 * Publishing benchmark (`npm run bench:publish`). A registry holding the whole real snapshot
 * (887 modules, mirrored from the test FakeUpstream) serves, and 200 small modules are published
 * through POST /api/v0/publish as `moon publish` sends them: one after another, then 8 at once.
 * Baseline, in the same run: the same 200 uploads to a plain node:http server that only parses
 * the multipart body and stores the zip atomically (fsync, rename) — what receiving an upload
 * costs before any registry work. Then: the time from a publish's 200 to a moon-like client's
 * `git pull` listing the version.
 *
 * Settings (environment): BENCH_MODULES (200), BENCH_VISIBILITY (10).
 */
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import busboy from 'busboy';
import pLimit from 'p-limit';
import { writeFileAtomic } from '../src/fs/atomic-write.js';
import { initRegistryWithSource, runCliOk, startServe, tempDir } from '../test/support/cli.js';
import { FakeUpstream } from '../test/support/fake-upstream.js';
import { buildFixture } from '../test/support/fixture.js';
import { moduleZip } from '../test/support/module-zip.js';
import { readIndex, update } from '../test/support/moon-client.js';
import { BenchFailure, envInteger, log, printTable } from './bench-support.js';

interface Pass {
  seconds: number;
  perSecond: number;
  p50: number;
  p99: number;
}

function zipFor(i: number, version: string): Buffer {
  const name = `bench/m${String(i).padStart(3, '0')}`;
  return moduleZip(
    { name, version, deps: {}, license: 'MIT', description: `benchmark module ${i}` },
    {
      'src/lib.mbt': `pub fn f${i}() -> Int { ${i} }\n`,
      'src/moon.pkg.json': '{}\n',
      'README.md': `# ${name}\n`,
    },
  );
}

async function post(url: string, token: string, zip: Buffer): Promise<number> {
  const form = new FormData();
  form.set('token', token);
  form.set('file', new Blob([zip], { type: 'application/zip' }), 'module.zip');
  const started = performance.now();
  const res = await fetch(url, { method: 'POST', body: form });
  const text = await res.text();
  if (res.status !== 200) throw new BenchFailure(`${url} answered ${res.status}: ${text}`);
  return performance.now() - started;
}

async function pass(
  zips: Buffer[],
  concurrency: number,
  send: (zip: Buffer) => Promise<number>,
): Promise<Pass> {
  const limit = pLimit(concurrency);
  const started = performance.now();
  const times = await Promise.all(zips.map((zip) => limit(() => send(zip))));
  const seconds = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0;
  return { seconds, perSecond: zips.length / seconds, p50: at(0.5), p99: at(0.99) };
}

/** Receives the same uploads and only stores them: the floor any registry stands on. */
async function baselineServer(dir: string): Promise<{ url: string; close: () => Promise<void> }> {
  await mkdir(dir, { recursive: true });
  let n = 0;
  const server = http.createServer((req, res) => {
    const parser = busboy({ headers: req.headers });
    const parts: Buffer[] = [];
    parser.on('file', (_name, stream) => stream.on('data', (chunk: Buffer) => parts.push(chunk)));
    parser.on('close', () => {
      writeFileAtomic(path.join(dir, `${n++}.zip`), Buffer.concat(parts)).then(
        () => res.end('{"status":"ok"}'),
        (error: unknown) => {
          res.statusCode = 500;
          res.end(String(error));
        },
      );
    });
    req.pipe(parser);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/v0/publish`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function main(): Promise<void> {
  const count = envInteger('BENCH_MODULES', 200, 1);
  const visibilityRuns = envInteger('BENCH_VISIBILITY', 10, 1);
  const fixture = await buildFixture();
  const upstream = await FakeUpstream.start({ fixture });
  const scratch = await tempDir('mr-bench-publish-');
  const registry = await initRegistryWithSource('up', upstream.url);
  try {
    log('mirroring the whole snapshot (the registry publishes into a realistic index)');
    await runCliOk(['mirror', '--full', '-q'], { cwd: registry.root, timeoutMs: 600_000 });
    const added = await runCliOk(['token', 'add', 'bench', '--publish', 'bench/**'], { cwd: registry.root });
    const token = added.stdout.trim().split('\n')[0] ?? '';
    const server = await startServe(registry.root, ['--log-level', 'warn']);
    const baseline = await baselineServer(path.join(scratch.path, 'baseline'));
    try {
      const publishUrl = `${server.url}/api/v0/publish`;
      const first = Array.from({ length: count }, (_, i) => zipFor(i, '0.1.0'));
      const second = Array.from({ length: count }, (_, i) => zipFor(i, '0.2.0'));
      log(`baseline: ${count} uploads stored by a plain node:http server`);
      const base = await pass(first, 1, (zip) => post(baseline.url, token, zip));
      log(`${count} publishes, one after another`);
      const sequential = await pass(first, 1, (zip) => post(publishUrl, token, zip));
      log(`${count} publishes, 8 at once`);
      const parallel = await pass(second, 8, (zip) => post(publishUrl, token, zip));

      log('time from a publish answer to a moon-like `git pull` listing the version');
      const home = path.join(scratch.path, 'moon-home');
      await update(server.url, home);
      const visible: number[] = [];
      for (let i = 0; i < visibilityRuns; i++) {
        await post(publishUrl, token, zipFor(i, '0.3.0'));
        const answered = performance.now();
        await update(server.url, home);
        const listed = (await readIndex(home)).modules
          .get(`bench/m${String(i).padStart(3, '0')}`)
          ?.has('0.3.0');
        if (!listed) throw new BenchFailure(`bench/m${i}@0.3.0 is not listed after the pull`);
        visible.push(performance.now() - answered);
      }
      visible.sort((a, b) => a - b);
      const ms = (v: number) => v.toFixed(1);
      printTable([
        ['pass', 'seconds', 'per second', 'p50 ms', 'p99 ms'],
        [
          'baseline (store only)',
          base.seconds.toFixed(2),
          base.perSecond.toFixed(1),
          ms(base.p50),
          ms(base.p99),
        ],
        [
          'publish, sequential',
          sequential.seconds.toFixed(2),
          sequential.perSecond.toFixed(1),
          ms(sequential.p50),
          ms(sequential.p99),
        ],
        [
          'publish, 8 at once',
          parallel.seconds.toFixed(2),
          parallel.perSecond.toFixed(1),
          ms(parallel.p50),
          ms(parallel.p99),
        ],
      ]);
      console.log(
        `RESULT publish modules=${count} sequential=${sequential.perSecond.toFixed(1)}/s parallel8=${parallel.perSecond.toFixed(1)}/s ` +
          `baseline=${base.perSecond.toFixed(1)}/s ratio=${(sequential.perSecond / base.perSecond).toFixed(3)}x ` +
          `publish_p50=${ms(sequential.p50)}ms visible_p50=${ms(visible[Math.floor(visible.length / 2)] ?? 0)}ms visible_max=${ms(visible.at(-1) ?? 0)}ms`,
      );
    } finally {
      await baseline.close();
      await server.stop();
    }
  } finally {
    await Promise.allSettled([upstream.close(), registry.remove(), scratch.remove(), fixture.cleanup()]);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof BenchFailure ? `bench failed: ${error.message}` : error);
  process.exit(1);
});
