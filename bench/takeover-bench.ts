/**
 * Takeover benchmark: a moonbit-registry-tools registry folder (its registry.toml with
 * `[upstream]`, its `data/index` work tree and every archive at
 * `packages/<owner>/<name>/<version>.zip`) mirrored with `mirror --full`, against the same
 * `mirror --full` into an empty folder, in the same run and over the same slow upstream.
 * The takeover should download nothing a source vouches for: the ratio shows what that saves.
 *
 * Env: BENCH_LATENCY_MS (default 50). Exits non-zero only on functional failures.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FakeUpstream } from '../test/support/fake-upstream.js';
import { buildFixture, type Fixture } from '../test/support/fixture.js';
import { git } from '../test/support/git.js';
import { predecessorToml } from '../test/support/predecessor-toml.js';
import { BenchFailure, CLI_BIN, envInteger, log, printTable, run } from './bench-support.js';

const TARGET_RATIO = 0.5;

/** The old tool's folder: registry.toml, an index work tree with a commit, every archive. */
async function predecessorFolder(root: string, fixture: Fixture, url: string): Promise<number> {
  await mkdir(path.join(root, 'data', 'index'), { recursive: true });
  await writeFile(path.join(root, 'registry.toml'), predecessorToml(url));
  const index = path.join(root, 'data', 'index');
  await git(['init', '-q', '-b', 'main', index]);
  await git([
    '-C',
    index,
    '-c',
    'user.name=b',
    '-c',
    'user.email=b@b',
    'commit',
    '-q',
    '--allow-empty',
    '-m',
    'old',
  ]);
  let archives = 0;
  for (const [module, versions] of fixture.modules) {
    for (const [version, info] of versions) {
      const target = path.join(root, 'data', 'packages', ...module.split('/'), `${version}.zip`);
      await mkdir(path.dirname(target), { recursive: true });
      await copyFile(fixture.archivePath(info.checksum), target);
      archives++;
    }
  }
  return archives;
}

interface MirrorRun {
  seconds: number;
  downloaded: number;
  skipped: number;
  failed: number;
  requests: number;
}

async function mirrorFull(root: string, upstream: FakeUpstream): Promise<MirrorRun> {
  const before = upstream.archiveRequests;
  const result = await run(process.execPath, [CLI_BIN, 'mirror', '--full', '--json', '-q'], root);
  if (result.code !== 0)
    throw new BenchFailure(`mirror --full exited with ${result.code}:\n${result.stderr}`);
  const summary = JSON.parse(result.stdout) as { downloaded: number; skipped: number; failed: number };
  return { ...summary, seconds: result.seconds, requests: upstream.archiveRequests - before };
}

async function main(): Promise<void> {
  const latencyMs = envInteger('BENCH_LATENCY_MS', 50, 0);
  log('building the fixture (cached under .cache/fixtures) ...');
  const fixture = await buildFixture();
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'moonbit-bench-takeover-'));
  let upstream: FakeUpstream | undefined;
  try {
    upstream = await FakeUpstream.start({ fixture, latencyMs });
    const fresh = path.join(scratch, 'fresh');
    await mkdir(fresh);
    await writeFile(path.join(fresh, 'registry.toml'), predecessorToml(upstream.url));
    log('mirror --full into an empty folder ...');
    const baseline = await mirrorFull(fresh, upstream);

    const old = path.join(scratch, 'predecessor');
    const archives = await predecessorFolder(old, fixture, upstream.url);
    log(`mirror --full of a moonbit-registry-tools folder with ${archives} archives ...`);
    const takeover = await mirrorFull(old, upstream);

    console.log(`takeover: ${archives} archives of moonbit-registry-tools; latency ${latencyMs} ms/request`);
    printTable([
      ['run', 'wall s', 'archive reqs', 'downloaded', 'present', 'failed'],
      ...(
        [
          ['baseline (empty folder)', baseline],
          ['takeover', takeover],
        ] as const
      ).map(([name, r]) => [
        name,
        r.seconds.toFixed(2),
        String(r.requests),
        String(r.downloaded),
        String(r.skipped),
        String(r.failed),
      ]),
    ]);
    const ratio = takeover.seconds / baseline.seconds;
    console.log(
      `RESULT takeover=${takeover.seconds.toFixed(2)}s baseline=${baseline.seconds.toFixed(2)}s ratio=${ratio.toFixed(2)}x takeover_downloads=${takeover.requests}`,
    );
    const targets: [boolean, string][] = [
      [takeover.requests === 0, `archives downloaded again: ${takeover.requests} (target 0)`],
      [ratio <= TARGET_RATIO, `takeover/baseline ${ratio.toFixed(2)}x (target <= ${TARGET_RATIO}x)`],
    ];
    for (const [ok, text] of targets) console.log(`${ok ? 'target met' : 'target missed'}: ${text}`);
  } finally {
    await upstream?.close();
    await fixture.cleanup();
    await rm(scratch, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof BenchFailure ? `bench failed: ${error.message}` : error);
  process.exitCode = 1;
});
