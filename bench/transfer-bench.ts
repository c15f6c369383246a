/**
 * Transfer benchmark: `export` of a registry holding the whole snapshot in ../shared/data
 * (every version of the 887 modules, mirrored from a local upstream with no added latency),
 * then `import` of that bundle into a registry fresh from `init`, against `tar` of the same
 * registry's data folder (create, then extract), all in the same run on the same disk. For
 * each: seconds, bytes written and peak RSS (sampled from /proc every 50 ms). After the
 * import, the two served indexes must hold the same files (same blob ids).
 *
 * The ratios say what export/import cost over copying the folder: they hash every byte (the
 * manifest, then the check before anything becomes visible), write the bundle atomically and
 * publish an index commit, and carry only what the served index needs. Targets: the bundle
 * no larger than the tar, and export and import streaming (peak RSS under 200 MiB whatever the
 * snapshot's size). Exits non-zero only on functional failures.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { initRegistryWithSource } from '../test/support/cli.js';
import { FakeUpstream } from '../test/support/fake-upstream.js';
import { buildFixture } from '../test/support/fixture.js';
import { git } from '../test/support/git.js';
import { BenchFailure, CLI_BIN, log, printTable } from './bench-support.js';
import { memoryAndGit } from './proc-stats.js';

const MAX_RSS_MIB = 200;

interface Measured {
  seconds: number;
  peakRssMiB: number;
  stdout: string;
}

/** Runs a command to completion, sampling its RSS; fails on a non-zero exit. */
function measure(command: string, args: string[], cwd: string): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let peak = 0;
    const sample = () => {
      try {
        // An exited process (a zombie until reaped) has no VmRSS: NaN, skipped.
        const rss = child.pid ? memoryAndGit(child.pid).rssMiB : Number.NaN;
        if (Number.isFinite(rss)) peak = Math.max(peak, rss);
      } catch {
        // exited between two samples
      }
    };
    const timer = setInterval(sample, 50);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) {
        reject(
          new BenchFailure(
            `${path.basename(command)} ${args.join(' ')} exited ${code}:\n${Buffer.concat(err)}`,
          ),
        );
      } else resolve({ seconds, peakRssMiB: peak, stdout: Buffer.concat(out).toString('utf8') });
    });
  });
}

const cli = (args: string[], cwd: string) => measure(process.execPath, [CLI_BIN, ...args], cwd);

async function main(): Promise<void> {
  log('building the fixture (cached under .cache/fixtures) ...');
  const fixture = await buildFixture();
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'moonbit-bench-transfer-'));
  let upstream: FakeUpstream | undefined;
  let registry: { root: string; remove: () => Promise<void> } | undefined;
  try {
    upstream = await FakeUpstream.start({ fixture });
    registry = await initRegistryWithSource('up', upstream.url);
    log('mirror --full of the whole snapshot ...');
    await cli(['mirror', '--full', '-q'], registry.root);
    await upstream.close();

    const bundle = path.join(scratch, 'full.bundle');
    log('export ...');
    const exported = await cli(['export', '-q', '--json', bundle], registry.root);
    const summary = JSON.parse(exported.stdout) as {
      files: { archives: number; total: number };
      bytes: number;
    };

    const target = path.join(scratch, 'imported');
    await cli(['init', target, '--name', 'imported'], scratch);
    log('import ...');
    const imported = await cli(['import', '-q', '--json', bundle], target);

    const tarFile = path.join(scratch, 'data.tar');
    log('tar -cf of the data folder ...');
    const tarCreate = await measure('tar', ['-cf', tarFile, '-C', registry.root, 'data'], scratch);
    const extracted = path.join(scratch, 'extracted');
    await mkdir(extracted);
    log('tar -xf ...');
    const tarExtract = await measure('tar', ['-xf', tarFile, '-C', extracted], scratch);

    const tree = (root: string) =>
      git(['--git-dir', path.join(root, 'data', 'index'), 'ls-tree', '-r', 'main']);
    if ((await tree(registry.root)) !== (await tree(target))) {
      throw new BenchFailure('the imported registry does not serve the same index files');
    }
    const bundleBytes = summary.bytes;
    const tarBytes = (await stat(tarFile)).size;
    const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
    console.log(`transfer: ${summary.files.archives} archives, ${summary.files.total} files in the bundle`);
    printTable([
      ['run', 'wall s', 'MiB written', 'peak RSS MiB'],
      ['export', exported.seconds.toFixed(2), mib(bundleBytes), exported.peakRssMiB.toFixed(0)],
      ['import', imported.seconds.toFixed(2), '', imported.peakRssMiB.toFixed(0)],
      ['tar -cf data', tarCreate.seconds.toFixed(2), mib(tarBytes), tarCreate.peakRssMiB.toFixed(0)],
      ['tar -xf', tarExtract.seconds.toFixed(2), '', tarExtract.peakRssMiB.toFixed(0)],
    ]);
    const exportRatio = exported.seconds / tarCreate.seconds;
    const importRatio = imported.seconds / tarExtract.seconds;
    const bytesRatio = bundleBytes / tarBytes;
    console.log(
      `RESULT export=${exported.seconds.toFixed(2)}s import=${imported.seconds.toFixed(2)}s tar_create=${tarCreate.seconds.toFixed(2)}s tar_extract=${tarExtract.seconds.toFixed(2)}s ` +
        `export/tar_create=${exportRatio.toFixed(2)}x import/tar_extract=${importRatio.toFixed(2)}x bytes=${bytesRatio.toFixed(2)}x ` +
        `rss_export=${exported.peakRssMiB.toFixed(0)}MiB rss_import=${imported.peakRssMiB.toFixed(0)}MiB`,
    );
    const targets: [boolean, string][] = [
      [bytesRatio <= 1, `bundle/tar bytes ${bytesRatio.toFixed(2)}x (target <= 1x)`],
      [
        exported.peakRssMiB < MAX_RSS_MIB,
        `export peak RSS ${exported.peakRssMiB.toFixed(0)} MiB (target < ${MAX_RSS_MIB})`,
      ],
      [
        imported.peakRssMiB < MAX_RSS_MIB,
        `import peak RSS ${imported.peakRssMiB.toFixed(0)} MiB (target < ${MAX_RSS_MIB})`,
      ],
    ];
    for (const [ok, text] of targets) console.log(`${ok ? 'target met' : 'target missed'}: ${text}`);
  } finally {
    await upstream?.close();
    await registry?.remove();
    await fixture.cleanup();
    await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof BenchFailure ? `bench failed: ${error.message}` : error);
  process.exitCode = 1;
});
