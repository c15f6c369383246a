/**
 * A git source's release tags and their archives, from real repositories made here: which tags
 * are versions, and tags packed byte for byte as `moon package` packs the checked-out folder,
 * the same in any clone.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import yauzl from 'yauzl';
import { packTag } from '../../src/git-source/pack-tag.js';
import { packArchiveOf, type TagVersion, updateTagCatalog } from '../../src/git-source/tag-catalog.js';
import { listReleaseTags, type ReleaseTag, versionInTag } from '../../src/git-source/tag-versions.js';
import { packModule } from '../../src/hosted/pack-module.js';
import { git } from '../support/git.js';

const LIMITS = { maxBytes: 1 << 20, maxEntries: 100, maxUncompressed: 1 << 20 };
const MODULE = 'team/tool';

describe('git source: release tags and their archives', () => {
  let root: string;
  let work: string;
  let gitDir: string;

  /** Writes files into the work tree, commits them at a fixed time, and tags the commit. */
  async function release(files: Record<string, string>, tags: string[], at: string): Promise<void> {
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(work, path)), { recursive: true });
      await writeFile(join(work, path), text);
    }
    const env = { GIT_AUTHOR_DATE: at, GIT_COMMITTER_DATE: at };
    await git(['-C', work, 'add', '-A'], { env });
    await git(['-C', work, 'commit', '-q', '-m', `release ${tags.join(' ')}`], { env });
    for (const tag of tags) {
      const annotated = tag.startsWith('0.');
      await git(['-C', work, 'tag', ...(annotated ? ['-a', '-m', tag] : []), tag], { env });
    }
  }

  const mod = (version: string, extra: object = {}) => JSON.stringify({ name: MODULE, version, ...extra });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'mbr-git-source-'));
    work = join(root, 'work');
    await git(['init', '-q', '--initial-branch=main', work]);
    await git(['-C', work, 'config', 'user.email', 't@example.com']);
    await git(['-C', work, 'config', 'user.name', 't']);
    await release(
      {
        'moon.mod.json': mod('1.0.0', { exclude: ['**/*_test.mbt'] }),
        'src/lib/lib.mbt': 'pub fn f() -> Int { 1 }\n',
        'src/lib/lib_test.mbt': 'test { }\n',
        'src/lib/moon.pkg.json': '{}',
        '.gitignore': '_build/\n',
      },
      ['v1.0.0', 'latest'],
      '2026-03-01T10:00:00Z',
    );
    await release({ 'src/lib/lib.mbt': 'pub fn f() -> Int { 2 }\n' }, ['0.0.9'], '2026-03-02T10:00:00Z');
    await release({ 'moon.mod.json': mod('1.1.0') }, ['v1.2.0'], '2026-03-03T10:00:00Z');
    await release(
      { 'moon.mod.json': mod('1.3.0'), 'tools/moon.mod.json': mod('2.0.0', { name: 'team/sub' }) },
      ['v1.3.0', 'release-7'],
      '2026-03-04T10:00:00Z',
    );
    gitDir = join(root, 'repo.git');
    await git(['clone', '-q', '--bare', work, gitDir]);
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function tag(name: string, dir = gitDir): Promise<ReleaseTag> {
    const found = (await listReleaseTags(dir)).tags.find((t) => t.tag === name);
    assert.ok(found, `${name} is a release tag`);
    return found;
  }

  test('every semver tag, with or without v, peeled to its commit; a pattern chooses others', async () => {
    const { tags, skipped } = await listReleaseTags(gitDir);
    assert.deepEqual(
      tags.map((t) => [t.tag, t.version]),
      [
        ['0.0.9', '0.0.9'],
        ['v1.0.0', '1.0.0'],
        ['v1.2.0', '1.2.0'],
        ['v1.3.0', '1.3.0'],
      ],
    );
    assert.deepEqual(skipped, []);
    const annotated = tags[0] as ReleaseTag;
    assert.equal(annotated.commit, (await git(['--git-dir', gitDir, 'rev-parse', '0.0.9^{commit}'])).trim());
    assert.equal(annotated.committedAt.toISOString(), '2026-03-02T10:00:00.000Z');

    const chosen = await listReleaseTags(gitDir, 'release-*');
    assert.deepEqual(chosen.tags, []);
    assert.deepEqual(chosen.skipped, [{ tag: 'release-7', reason: 'its name ends in no semver version' }]);
    assert.equal(versionInTag('json-v1.2.0'), '1.2.0');
    assert.equal(versionInTag('tools/2.0.0-rc.1'), '2.0.0-rc.1');
    assert.equal(versionInTag('v1.0.0'), '1.0.0');
    assert.equal(versionInTag('x1.0.0'), undefined);
    assert.deepEqual(
      (await listReleaseTags(gitDir, 'v1.*')).tags.map((t) => t.tag),
      ['v1.0.0', 'v1.2.0', 'v1.3.0'],
    );
  });

  test('a tag packs as `moon package` packs its checkout, the same bytes in another clone', async () => {
    const v1 = await tag('v1.0.0');
    const packed = await packTag(gitDir, v1, undefined, LIMITS);
    assert.equal(packed.kind, 'packed');
    if (packed.kind !== 'packed') return;
    assert.deepEqual(await zipNames(packed.bytes), [
      '.gitignore',
      'moon.mod.json',
      'src/lib/lib.mbt',
      'src/lib/moon.pkg.json',
    ]);
    assert.equal(packed.archive.module, MODULE);
    assert.equal(packed.entry.checksum, createHash('sha256').update(packed.bytes).digest('hex'));
    const line = JSON.parse(packed.entry.raw) as Record<string, unknown>;
    assert.equal(line.created_at, '2026-03-01T10:00:00.000000+00:00', 'the tag commit time');
    assert.deepEqual(line.exclude, ['**/*_test.mbt'], "moon.mod.json's keys are kept");

    // moon package of the checked-out tag (with an untracked build folder) gives the same zip.
    const checkout = join(root, 'checkout');
    await git(['clone', '-q', '--branch', 'v1.0.0', work, checkout]);
    await mkdir(join(checkout, '_build'), { recursive: true });
    await writeFile(join(checkout, '_build', 'out.wasm'), 'built');
    assert.deepEqual((await packModule(checkout)).bytes, packed.bytes);

    // Another registry's clone, fetched later: the same checksum.
    const other = join(root, 'other.git');
    await git(['clone', '-q', '--bare', gitDir, other]);
    const again = await packTag(other, await tag('v1.0.0', other), undefined, LIMITS);
    assert.equal(again.kind === 'packed' && again.entry.checksum, packed.entry.checksum);
  });

  test('skipped, saying why: a version the tag does not claim, no moon.mod.json; a subfolder module packs', async () => {
    const wrong = await packTag(gitDir, await tag('v1.2.0'), undefined, LIMITS);
    assert.deepEqual(wrong, {
      kind: 'skipped',
      reason: 'its moon.mod.json says version 1.1.0, the tag 1.2.0',
    });
    const missing = await packTag(gitDir, await tag('v1.0.0'), 'tools', LIMITS);
    assert.deepEqual(missing, { kind: 'skipped', reason: 'it has no folder tools' });
    const noManifest = await packTag(gitDir, await tag('v1.0.0'), 'src', LIMITS);
    assert.deepEqual(noManifest, { kind: 'skipped', reason: 'it has no moon.mod.json in src' });
    // Bounded before anything is read: the tree's sizes say it would unpack to too much.
    const huge = await packTag(gitDir, await tag('v1.0.0'), undefined, { ...LIMITS, maxUncompressed: 10 });
    assert.equal(huge.kind, 'skipped');
    assert.match(
      huge.kind === 'skipped' ? huge.reason : '',
      /^its files come to \d+ bytes, over the limit of 10$/,
    );
    const sub = await packTag(gitDir, { ...(await tag('v1.3.0')), version: '2.0.0' }, 'tools/', LIMITS);
    assert.equal(sub.kind, 'packed');
    if (sub.kind === 'packed') {
      assert.equal(sub.archive.module, 'team/sub');
      assert.deepEqual(await zipNames(sub.bytes), ['moon.mod.json']);
    }
  });
});

describe('git source: the tag catalog', () => {
  let root: string;
  let work: string;
  let gitDir: string;
  let tick = 0;

  async function commitAndTag(files: Record<string, string>, tags: string[], force = false): Promise<void> {
    for (const [path, text] of Object.entries(files)) await writeFile(join(work, path), text);
    const at = `2026-04-0${++tick}T12:00:00Z`;
    const env = { GIT_AUTHOR_DATE: at, GIT_COMMITTER_DATE: at };
    await git(['-C', work, 'add', '-A'], { env });
    await git(['-C', work, 'commit', '-q', '--allow-empty', '-m', tags.join(' ')], { env });
    for (const tag of tags) await git(['-C', work, 'tag', ...(force ? ['-f'] : []), tag], { env });
    // What the registry's fetch does: every tag, moved ones included.
    await git(['--git-dir', gitDir, 'fetch', '-q', '--force', work, '+refs/tags/*:refs/tags/*']);
  }

  const mod = (name: string, version: string) => JSON.stringify({ name, version });
  const options = { refPattern: undefined, path: undefined, limits: LIMITS };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'mbr-git-catalog-'));
    work = join(root, 'work');
    gitDir = join(root, 'repo.git');
    await git(['init', '-q', '--initial-branch=main', work]);
    await git(['-C', work, 'config', 'user.email', 't@example.com']);
    await git(['-C', work, 'config', 'user.name', 't']);
    await git(['init', '-q', '--bare', gitDir]);
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('tags become versions once; a moved tag, a twin tag, another module, a wrong version are named', async () => {
    await commitAndTag({ 'moon.mod.json': mod(MODULE, '0.1.0'), 'a.mbt': '1' }, ['v0.1.0']);
    await commitAndTag({ 'moon.mod.json': mod(MODULE, '0.2.0') }, ['v0.2.0', '0.2.0']);
    await commitAndTag({ 'moon.mod.json': mod(MODULE, '0.2.5') }, ['v0.3.0']);
    const first = await updateTagCatalog(gitDir, { module: undefined, versions: {} }, options);
    assert.deepEqual(first.added, ['0.1.0', '0.2.0']);
    assert.equal(first.catalog.module, MODULE);
    assert.equal(first.catalog.versions['0.2.0']?.tag, '0.2.0', 'of twins, the first by name');
    assert.deepEqual(first.warnings, [
      'tag v0.2.0 skipped: version 0.2.0 comes from tag 0.2.0',
      'tag v0.3.0 skipped: its moon.mod.json says version 0.2.5, the tag 0.3.0',
    ]);

    // The same tags again: nothing packed; a tag moved and a foreign module are named.
    const servedBefore = first.catalog.versions['0.1.0'];
    await commitAndTag({ 'a.mbt': '2', 'moon.mod.json': mod(MODULE, '0.1.0') }, ['v0.1.0'], true);
    await commitAndTag({ 'moon.mod.json': mod('team/other', '0.4.0') }, ['v0.4.0']);
    await commitAndTag({ 'moon.mod.json': mod(MODULE, '0.5.0') }, ['v0.5.0']);
    const second = await updateTagCatalog(gitDir, first.catalog, options);
    assert.deepEqual(second.added, ['0.5.0']);
    assert.deepEqual(second.catalog.versions['0.1.0'], servedBefore, 'a moved tag never changes a version');
    assert.equal(second.warnings.length, 4, second.warnings.join('\n'));
    assert.match(
      second.warnings[0] as string,
      /^tag v0\.1\.0 moved from [0-9a-f]{12} to [0-9a-f]{12}: version 0\.1\.0 keeps what it served$/,
    );
    assert.ok(
      second.warnings.includes(`tag v0.4.0 skipped: its moon.mod.json names team/other, not ${MODULE}`),
    );

    // The same tags a third time: nothing new.
    const third = await updateTagCatalog(gitDir, second.catalog, options);
    assert.deepEqual(third.added, []);
    assert.deepEqual(third.catalog, second.catalog);
  });

  test('an archive is packed again from the commit its line was made from, or refused', async () => {
    const catalog = (await updateTagCatalog(gitDir, { module: undefined, versions: {} }, options)).catalog;
    const moved = catalog.versions['0.1.0'] as TagVersion;
    // v0.1.0 was force-moved by the test before: its version still packs from its first commit.
    await commitAndTag({ 'a.mbt': '3', 'moon.mod.json': mod(MODULE, '0.1.0') }, ['v0.1.0'], true);
    const packed = await packArchiveOf(gitDir, catalog, MODULE, '0.1.0', options);
    assert.ok(packed && 'bytes' in packed, JSON.stringify(packed));
    assert.equal(createHash('sha256').update(packed.bytes).digest('hex'), moved.checksum);

    assert.equal(await packArchiveOf(gitDir, catalog, MODULE, '9.9.9', options), undefined);
    assert.equal(await packArchiveOf(gitDir, catalog, 'team/other', '0.1.0', options), undefined);
    // A line whose bytes its commit does not give (a changed packer, a lying catalog): refused.
    const lying = { ...catalog, versions: { '0.1.0': { ...moved, checksum: 'f'.repeat(64) } } };
    const refused = await packArchiveOf(gitDir, lying, MODULE, '0.1.0', options);
    assert.ok(refused && 'mismatch' in refused);
    assert.match(refused.mismatch, /now packs to [0-9a-f]{64}, not f{64}/);
  });
});

async function zipNames(bytes: Buffer): Promise<string[]> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.fromBuffer(bytes, { lazyEntries: true }, (error, z) => (error ? reject(error) : resolve(z))),
  );
  const names: string[] = [];
  await new Promise<void>((resolve, reject) => {
    zip.on('entry', (entry: yauzl.Entry) => {
      names.push(entry.fileName);
      zip.readEntry();
    });
    zip.on('end', resolve);
    zip.on('error', reject);
    zip.readEntry();
  });
  return names;
}
