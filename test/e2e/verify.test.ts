/**
 * `verify` and `verify --repair` on a damaged registry (README "Verify and repair"): every kind
 * of problem is named, text and --json; the repair downloads only what it must, deletes strays,
 * drops what cannot be fixed, publishes one commit, and leaves a registry a client can use.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { writeCommit } from '../../src/git/commit-writer.js';
import { acquireRegistryLock } from '../../src/registry/lock.js';
import {
  type CliResult,
  initRegistryWithSource,
  isRecord,
  runCli,
  runCliOk,
  startServe,
  tempDir,
} from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, checksumIn, type Fixture, makeArchive, sha256Hex } from '../support/fixture.js';
import { git } from '../support/git.js';
import { download, readIndex, update } from '../support/moon-client.js';

/** Ten versions, no dependencies. */
const REGEXP = 'moonbitlang/regexp';
/** Only the second source has it. */
const OTHER = 'other-org/lib';
const OTHER_VERSIONS = ['0.1.0', '0.2.0'];

interface JsonProblem {
  kind: string;
  module?: string;
  version?: string;
  path?: string;
  detail: string;
  action?: string;
}

interface JsonReport {
  ok: boolean;
  commit: string;
  checked: { versions: number; archives: number; bytes: number };
  unlisted: number;
  problems: JsonProblem[];
  repaired?: JsonProblem[];
  unrepaired?: JsonProblem[];
  index?: { commit: string; changed: boolean };
}

function parseReport(result: CliResult): JsonReport {
  let value: unknown;
  try {
    value = JSON.parse(result.stdout);
  } catch {
    assert.fail(`--json printed no JSON:\n${result.stdout}\n${result.stderr}`);
  }
  assert.ok(isRecord(value) && typeof value.ok === 'boolean', result.stdout);
  assert.ok(isRecord(value.checked) && Array.isArray(value.problems), result.stdout);
  for (const p of value.problems as unknown[]) {
    assert.ok(isRecord(p) && typeof p.kind === 'string' && typeof p.detail === 'string', result.stdout);
  }
  return value as unknown as JsonReport;
}

/** `kind subject` of each problem, sorted: the subject is module@version, else the path. */
function named(problems: JsonProblem[]): string[] {
  return problems.map((p) => `${p.kind} ${p.version ? `${p.module}@${p.version}` : p.path}`).sort();
}

function errorLine(result: CliResult): string {
  const lines = result.stderr.split('\n').filter((l) => l.startsWith('error:'));
  assert.equal(lines.length, 1, `one error line:\n${result.stderr}`);
  return lines[0] ?? '';
}

describe('verify and verify --repair', () => {
  let fixture: Fixture;
  let otherFx: Fixture;
  let upstream: FakeUpstream;
  let other: FakeUpstream;
  let root: string;
  let removeRoot: () => Promise<void>;
  let scratch: { path: string; remove: () => Promise<void> };
  let versions: string[];

  const indexGit = () => path.join(root, 'data', 'index');
  const packages = () => path.join(root, 'data', 'packages');
  const archivePath = (module: string, version: string, checksum: string) =>
    path.join(packages(), ...module.split('/'), version, `${checksum}.zip`);
  const rel = (file: string) => path.relative(root, file).split(path.sep).join('/');
  const head = async () => (await git(['--git-dir', indexGit(), 'rev-parse', 'refs/heads/main'])).trim();
  const gitRequests = (u: FakeUpstream) => u.requests.filter((r) => r.url.startsWith('/git/')).length;

  before(async () => {
    fixture = await buildFixture();
    otherFx = await buildFixture({
      flavor: 'other',
      filter: () => false,
      extraModules: OTHER_VERSIONS.map((version) => ({ module: OTHER, version })),
    });
    upstream = await FakeUpstream.start({ fixture });
    other = await FakeUpstream.start({ fixture: otherFx });
    scratch = await tempDir('mr-verify-');
    ({ root, remove: removeRoot } = await initRegistryWithSource('up', upstream.url));
    await runCliOk(['source', 'add', 'other', '--url', other.url], { cwd: root });
    await runCliOk(['mirror', '-q', REGEXP], { cwd: root });
    await runCliOk(['mirror', '-q', '-s', 'other', OTHER], { cwd: root });
    versions = [...(fixture.modules.get(REGEXP)?.keys() ?? [])].sort();
    assert.ok(versions.length >= 5, 'fixture precondition: several versions');
  });

  after(async () => {
    upstream?.faults.clear();
    await Promise.allSettled([
      upstream?.close(),
      other?.close(),
      fixture?.cleanup(),
      otherFx?.cleanup(),
      removeRoot?.(),
      scratch?.remove(),
    ]);
  });

  test('--help says what is checked and what --repair does', async () => {
    const help = await runCliOk(['verify', '--help']);
    assert.match(help.stdout, /^Usage: moonbit-registry verify \[options\]/m);
    for (const word of ['--repair', '--json', 'unparsable-line', 'missing-archive', 'corrupt-archive']) {
      assert.match(help.stdout, new RegExp(word));
    }
    assert.match(help.stdout, /no-source/);
    assert.match(help.stdout, /stray-file/);
    assert.match(help.stdout, /data\/proxy-index/);
    const top = await runCliOk(['--help']);
    assert.match(top.stdout, /verify/);
  });

  test('a mirror holding the registry, or a broken registry.toml: verify does not start', async () => {
    const lock = await acquireRegistryLock(path.join(root, 'data', 'registry'), 'mirror');
    try {
      const held = await runCli(['verify', '--json'], { cwd: root });
      assert.equal(held.code, 1);
      assert.match(errorLine(held), /another mirror \(pid \d+ .*verify not started/);
      assert.match(JSON.parse(held.stdout).error, /another mirror/);
    } finally {
      await lock.release();
    }
    const scratchRoot = path.join(scratch.path, 'broken');
    await fs.cp(root, scratchRoot, { recursive: true });
    const config = path.join(scratchRoot, 'registry.toml');
    const lines = (await fs.readFile(config, 'utf8')).split('\n');
    const port = lines.findIndex((l) => /^port\s*=/.test(l));
    lines[port] = 'port = = 3';
    await fs.writeFile(config, lines.join('\n'));
    const broken = await runCli(['verify'], { cwd: scratchRoot });
    assert.equal(broken.code, 1);
    const line = errorLine(broken);
    assert.ok(line.includes(config), line);
    assert.match(line, new RegExp(`line ${port + 1}\\b`));
  });

  test('a healthy registry: exit 0, no problems (text and --json), nothing changed', async () => {
    const before = await head();
    const text = await runCliOk(['verify'], { cwd: root });
    assert.match(text.stdout, /Checked 12 served versions and 12 stored archives .*: no problems/);
    const json = parseReport(await runCliOk(['verify', '--json', '-d', root]));
    assert.equal(json.ok, true);
    assert.deepEqual(json.problems, []);
    assert.equal(json.checked.versions, 12);
    assert.equal(json.checked.archives, 12);
    assert.ok(json.checked.bytes > 0);
    assert.equal(json.unlisted, 0);
    assert.equal(json.commit, before);
    assert.equal(await head(), before);
  });

  test('a damaged registry: each problem named, non-zero exit; --repair fixes it in one commit', async () => {
    const [corrupt, missing, unfetchable] = versions as [string, string, string];
    const sum = (version: string) => checksumIn(fixture, REGEXP, version);
    // Flipped bytes, a deleted archive, and one whose source will answer 404 once it is gone.
    const corruptFile = archivePath(REGEXP, corrupt, sum(corrupt));
    const bytes = await fs.readFile(corruptFile);
    bytes[10] = (bytes[10] ?? 0) ^ 0xff;
    await fs.writeFile(corruptFile, bytes);
    await fs.rm(archivePath(REGEXP, missing, sum(missing)));
    await fs.rm(archivePath(REGEXP, unfetchable, sum(unfetchable)));
    upstream.faults.set(`${REGEXP}@${unfetchable}`, 'notFound');
    // Strays: a partial download beside an archive, a junk file, a folder where a file belongs.
    const part = path.join(
      packages(),
      ...REGEXP.split('/'),
      versions[3] as string,
      `${sum(versions[3] as string)}.zip.part`,
    );
    await fs.writeFile(part, 'half');
    await fs.writeFile(path.join(packages(), 'notes.txt'), 'junk');
    const folder = archivePath('moonbitlang/folder', '1.0.0', 'ab'.repeat(32));
    await fs.mkdir(folder, { recursive: true });
    // An archive no index lists is fine; one whose bytes do not match its name is not.
    const unlisted = makeArchive('moonbitlang/unlisted', '1.0.0', 'loose');
    const unlistedFile = archivePath('moonbitlang/unlisted', '1.0.0', sha256Hex(unlisted));
    await fs.mkdir(path.dirname(unlistedFile), { recursive: true });
    await fs.writeFile(unlistedFile, unlisted);
    const badUnlisted = archivePath('moonbitlang/unlisted', '2.0.0', 'cd'.repeat(32));
    await fs.mkdir(path.dirname(badUnlisted), { recursive: true });
    await fs.writeFile(badUnlisted, 'not these bytes');
    // A line `moon` skips, committed onto the served index.
    const indexFile = `user/${REGEXP}.index`;
    const text = await git(['--git-dir', indexGit(), 'show', `main:${indexFile}`]);
    await writeCommit({
      gitDir: indexGit(),
      branch: 'main',
      parent: await head(),
      message: 'damage\n',
      changes: new Map([[indexFile, Buffer.from(`${text}{"name": "${REGEXP}", "version": \n`)]]),
    });
    // The second source goes away: its versions have no source any more.
    await runCliOk(['source', 'disable', 'other'], { cwd: root });

    const expected = [
      `unparsable-line ${indexFile}`,
      `corrupt-archive ${REGEXP}@${corrupt}`,
      `missing-archive ${REGEXP}@${missing}`,
      `missing-archive ${REGEXP}@${unfetchable}`,
      ...OTHER_VERSIONS.map((v) => `no-source ${OTHER}@${v}`),
      'corrupt-archive moonbitlang/unlisted@2.0.0',
      `stray-file ${rel(part)}`,
      'stray-file data/packages/notes.txt',
      `stray-file ${rel(folder)}`,
    ].sort();

    const damagedHead = await head();
    const text1 = await runCli(['verify'], { cwd: root });
    assert.equal(text1.code, 1, text1.stderr);
    for (const line of expected) {
      const [kind, subject] = line.split(' ') as [string, string];
      assert.ok(
        text1.stdout.split('\n').some((l) => l.startsWith(kind) && l.includes(` ${subject}: `)),
        `"${line}" is reported:\n${text1.stdout}`,
      );
    }
    assert.match(text1.stdout, /: 10 problems$/m);
    assert.match(errorLine(text1), /10 problems found/);
    assert.match(text1.stderr, /hint: .*verify --repair/);

    const json1 = await runCli(['verify', '--json'], { cwd: root });
    assert.equal(json1.code, 1);
    const report = parseReport(json1);
    assert.equal(report.ok, false);
    assert.deepEqual(named(report.problems), expected);
    assert.equal(report.unlisted, 2, 'the loose archive and the corrupt one');
    const corruptProblem = report.problems.find((p) => p.version === corrupt);
    assert.match(corruptProblem?.detail ?? '', /hash/);
    assert.equal(corruptProblem?.path, rel(corruptFile));
    assert.match(report.problems.find((p) => p.kind === 'unparsable-line')?.detail ?? '', /line 11/);
    // Checking changes nothing.
    assert.equal(await head(), damagedHead);
    assert.ok(existsSync(part) && existsSync(folder) && existsSync(badUnlisted));

    const archivesBefore = { up: upstream.archiveRequests, other: other.archiveRequests };
    const gitBefore = [gitRequests(upstream), gitRequests(other)];
    const repair = await runCli(['verify', '--repair'], { cwd: root });
    assert.equal(repair.code, 1, `dropped versions are not repairs:\n${repair.stdout}\n${repair.stderr}`);
    assert.match(errorLine(repair), /7 of 10 problems repaired; 3 versions dropped from the served index/);
    const lines = repair.stdout.split('\n');
    const said = (prefix: string, subject: string) =>
      assert.ok(
        lines.some((l) => l.startsWith(prefix) && l.includes(` ${subject}: `)),
        `"${prefix} ... ${subject}":\n${repair.stdout}`,
      );
    said('repaired corrupt-archive', `${REGEXP}@${corrupt}`);
    said('repaired missing-archive', `${REGEXP}@${missing}`);
    said('repaired unparsable-line', indexFile);
    said('repaired stray-file', rel(part));
    said('repaired corrupt-archive', 'moonbitlang/unlisted@2.0.0');
    said('dropped  missing-archive', `${REGEXP}@${unfetchable}`);
    for (const v of OTHER_VERSIONS) said('dropped  no-source', `${OTHER}@${v}`);
    assert.match(repair.stdout, /downloaded again from "up"/);
    assert.match(repair.stdout, /Served index: new commit \w+ \(3 versions dropped, 1 line removed\)/);

    // Downloads: the corrupt and the missing archive once each, the unfetchable one once (404).
    assert.equal(upstream.archiveRequests - archivesBefore.up, 3);
    assert.equal(other.archiveRequests, archivesBefore.other);
    assert.deepEqual([gitRequests(upstream), gitRequests(other)], gitBefore, 'no index fetch');
    // One commit on top of the damaged one.
    const repairedHead = await head();
    assert.equal((await git(['--git-dir', indexGit(), 'rev-parse', `${repairedHead}^`])).trim(), damagedHead);
    // Files: strays and corrupt bytes gone, the loose archive kept, no temp file left.
    for (const gone of [part, folder, badUnlisted, path.join(packages(), 'notes.txt')]) {
      assert.ok(!existsSync(gone), `${gone} removed`);
    }
    assert.ok(existsSync(unlistedFile));
    assert.equal(sha256Hex(await fs.readFile(corruptFile)), sum(corrupt));
    const tmp = path.join(root, 'data', 'tmp');
    if (existsSync(tmp)) assert.deepEqual(await fs.readdir(tmp, { recursive: true }), []);
    const provenance = JSON.parse(
      await fs.readFile(path.join(root, 'data', 'state', 'provenance.json'), 'utf8'),
    ) as { entries: Record<string, unknown> };
    assert.equal(provenance.entries[`${REGEXP}@${unfetchable}`], undefined);
    assert.equal(provenance.entries[`${OTHER}@0.1.0`], undefined);

    upstream.faults.clear();
    const clean = parseReport(await runCliOk(['verify', '--json'], { cwd: root }));
    assert.deepEqual(clean.problems, []);
    assert.equal(clean.checked.versions, versions.length - 1);
    assert.equal(clean.unlisted, 1 + OTHER_VERSIONS.length, "the loose archive and the disabled source's");

    // A client sees a consistent registry: every listed version downloads with its checksum.
    const server = await startServe(root);
    try {
      const moonHome = path.join(scratch.path, 'moon-home');
      await update(server.url, moonHome);
      const index = await readIndex(moonHome);
      assert.equal(index.skippedLines, 0);
      assert.equal(index.modules.has(OTHER), false);
      const listed = [...(index.modules.get(REGEXP)?.keys() ?? [])].sort();
      assert.deepEqual(
        listed,
        versions.filter((v) => v !== unfetchable),
      );
      for (const [module, entries] of index.modules) {
        for (const [version, entry] of entries) {
          assert.ok(entry.checksum);
          await download(server.url, module, version, entry.checksum);
        }
      }
    } finally {
      await server.stop();
    }

    // The dropped version comes back with the next mirror, which downloads only it.
    const requests = upstream.archiveRequests;
    await runCliOk(['mirror', '-q', REGEXP], { cwd: root });
    assert.equal(upstream.archiveRequests - requests, 1);
  });

  test('--repair --json: everything repaired exits 0 and lists what was done', async () => {
    const version = versions[4] as string;
    const file = archivePath(REGEXP, version, checksumIn(fixture, REGEXP, version));
    await fs.writeFile(file, 'garbage');
    const before = await head();
    const result = await runCli(['verify', '--repair', '--json'], { cwd: root });
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    const report = parseReport(result);
    assert.equal(report.ok, true);
    assert.deepEqual(named(report.problems), [`corrupt-archive ${REGEXP}@${version}`]);
    assert.deepEqual(
      report.repaired?.map((o) => [o.kind, o.action, o.detail]),
      [['corrupt-archive', 'downloaded', 'downloaded again from "up"']],
    );
    assert.deepEqual(report.unrepaired, []);
    assert.deepEqual(report.index, { commit: before, changed: false }, 'nothing to change in the index');
    assert.equal(await head(), before);
    assert.deepEqual((await runCliOk(['verify', '--json'], { cwd: root })).code, 0);
  });
});
