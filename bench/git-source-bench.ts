/**
 * Git source benchmark (`npm run bench:git-source`). A module's repository with BENCH_TAGS
 * release tags (each a commit changing a few of BENCH_FILES source files, ~2 KiB each) is
 * served from disk (file://), and a registry with it as a git source runs:
 *
 * - `mirror --full -s tool` the first time: fetch every tag, pack each (checksum and line),
 *   then pack again and store each archive;
 * - the same again with nothing new (what every sync costs);
 * - after one new tag.
 *
 * Baseline, in the same run: `git clone --bare` of the repository (what fetching costs) plus
 * `git archive --format=zip` of every tag (git's own packer, no checks, no index).
 *
 * Targets: a run with nothing new at most the baseline; packing every tag the first time within
 * 10x of it (our packer deflates in JavaScript, for bytes that are the same on every machine).
 *
 * Settings (environment): BENCH_TAGS (100), BENCH_FILES (40).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runCliOk, tempDir } from '../test/support/cli.js';
import { git } from '../test/support/git.js';
import { BenchFailure, CLI_BIN, envInteger, log, printTable, run } from './bench-support.js';

const MODULE = 'bench/tool';

function sourceFile(file: number, release: number): string {
  const lines = [`// file ${file}, release ${release}`];
  for (let i = 0; i < 40; i++)
    lines.push(`pub fn f${file}_${i}(x : Int) -> Int { x * ${i} + ${release % 7} }`);
  return `${lines.join('\n')}\n`;
}

async function time(what: string, action: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await action();
  const seconds = (performance.now() - started) / 1000;
  log(`${what}: ${seconds.toFixed(2)} s`);
  return seconds;
}

async function main(): Promise<void> {
  const tags = envInteger('BENCH_TAGS', 100, 1);
  const files = envInteger('BENCH_FILES', 40, 1);
  const scratch = await tempDir('mbr-bench-git-');
  try {
    const work = path.join(scratch.path, 'work');
    await mkdir(path.join(work, 'src'), { recursive: true });
    await git(['init', '-q', '--initial-branch=main', work]);
    await git(['-C', work, 'config', 'user.email', 'b@example.com']);
    await git(['-C', work, 'config', 'user.name', 'b']);
    log(`making a repository with ${tags} tags of ${files} files`);
    const release = async (n: number) => {
      const version = `0.${Math.floor(n / 100)}.${n % 100}`;
      await writeFile(path.join(work, 'moon.mod.json'), JSON.stringify({ name: MODULE, version }));
      if (n === 0) await writeFile(path.join(work, 'src/moon.pkg.json'), '{}\n');
      for (let f = 0; f < files; f++) {
        // Every file at the first release, then three a release: history grows like a real one.
        if (n === 0 || f % Math.max(1, Math.floor(files / 3)) === n % 3)
          await writeFile(path.join(work, `src/f${f}.mbt`), sourceFile(f, n));
      }
      await git(['-C', work, 'add', '-A']);
      await git(['-C', work, 'commit', '-q', '-m', version]);
      await git(['-C', work, 'tag', `v${version}`]);
    };
    for (let n = 0; n < tags; n++) await release(n);
    const url = `file://${work}`;

    const root = path.join(scratch.path, 'registry');
    await runCliOk(['init', root, '--name', 'bench']);
    await runCliOk(['source', 'disable', 'mooncakes'], { cwd: root });
    await runCliOk(['source', 'add', 'tool', '--git', url], { cwd: root });
    const mirror = async () => {
      const result = await run(process.execPath, [CLI_BIN, 'mirror', '--full', '-s', 'tool'], root);
      if (result.code !== 0 || /warning/i.test(result.stderr))
        throw new BenchFailure(`mirror failed or warned:\n${result.stderr}`);
    };
    const first = await time(`mirror, ${tags} new tags`, mirror);
    const again = await time('mirror, nothing new', mirror);
    await release(tags);
    const oneNew = await time('mirror, one new tag', mirror);

    const bare = path.join(scratch.path, 'baseline.git');
    const zips = path.join(scratch.path, 'zips');
    await mkdir(zips);
    const baseline = await time(`git clone --bare + git archive of ${tags + 1} tags`, async () => {
      await git(['clone', '-q', '--bare', url, bare]);
      const names = (await git(['--git-dir', bare, 'tag'])).split('\n').filter(Boolean);
      for (const tag of names) {
        await git(['--git-dir', bare, 'archive', '--format=zip', '-o', path.join(zips, `${tag}.zip`), tag]);
      }
    });

    console.log(`\nGit source: ${tags} tags of ${files} files (BENCH_TAGS, BENCH_FILES)\n`);
    printTable([
      ['run', 'seconds', 'per tag (ms)', 'vs baseline'],
      [
        'mirror, every tag new',
        first.toFixed(2),
        ((first * 1000) / tags).toFixed(1),
        `${(first / baseline).toFixed(2)}x`,
      ],
      ['mirror, nothing new', again.toFixed(2), '-', `${(again / baseline).toFixed(2)}x`],
      ['mirror, one new tag', oneNew.toFixed(2), '-', `${(oneNew / baseline).toFixed(2)}x`],
      [
        'baseline: clone + git archive',
        baseline.toFixed(2),
        ((baseline * 1000) / (tags + 1)).toFixed(1),
        '1.00x',
      ],
    ]);
    console.log(
      `\nRESULT first=${first.toFixed(2)}s unchanged=${again.toFixed(2)}s one_new=${oneNew.toFixed(2)}s baseline=${baseline.toFixed(2)}s first_ratio=${(first / baseline).toFixed(2)} unchanged_ratio=${(again / baseline).toFixed(2)}`,
    );
    const targets: Array<[boolean, string]> = [
      [again <= baseline, 'a sync with nothing new costs no more than cloning and archiving once (<= 1.0x)'],
      [first <= 10 * baseline, 'packing every tag the first time within 10x of clone + git archive'],
    ];
    for (const [ok, text] of targets) console.log(`${ok ? 'target met' : 'target missed'}: ${text}`);
  } finally {
    await scratch.remove();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
