import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { moduleMatcher } from '../../src/core/module-glob.js';
import {
  type AssetFolderFact,
  referencesOf,
  type SelectionRules,
  type StoredArchiveFact,
  type StoredFact,
  selectGarbage,
  type TempFact,
} from '../../src/gc/garbage-selection.js';
import { scanStoredFiles } from '../../src/gc/stored-files.js';
import { registryLayout } from '../../src/registry/layout.js';
import { assetVersion } from '../../src/server/asset-downloads.js';
import { LastDownloads, readLastDownloads } from '../../src/status/last-downloads.js';
import { createArchiveStore } from '../../src/store/archive-store.js';
import { createAssetStore } from '../../src/store/asset-store.js';
import { FsBlobStore } from '../../src/store/blob/fs-blob-store.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 5, 12);
const SUM_A = 'a'.repeat(64);
const SUM_B = 'b'.repeat(64);

function archive(module: string, version: string, checksum: string, ageMs = 10 * DAY): StoredArchiveFact {
  return {
    kind: 'archive',
    path: `/r/data/packages/${module}/${version}/${checksum}.zip`,
    key: `packages/${module}/${version}/${checksum}.zip`,
    module,
    version,
    checksum,
    bytes: 100,
    mtimeMs: NOW - ageMs,
  };
}

function assets(module: string, version: string, ageMs = 10 * DAY): AssetFolderFact {
  return {
    kind: 'assets',
    path: `/r/data/assets/${module}/${version}`,
    module,
    version,
    bytes: 10,
    files: 2,
    mtimeMs: NOW - ageMs,
  };
}

function temp(name: string, ageMs: number, owner?: { host: string; pid: number }): TempFact {
  return {
    kind: 'temp',
    path: `/r/data/tmp/${name}`,
    ...(owner ? { owner } : {}),
    bytes: 1,
    files: 1,
    mtimeMs: NOW - ageMs,
  };
}

function rules(overrides: Partial<SelectionRules> = {}): SelectionRules {
  return {
    references: referencesOf([]),
    pinned: moduleMatcher([]),
    olderThanMs: undefined,
    downloads: { archives: new Map(), assets: new Map() },
    now: NOW,
    host: 'here',
    pid: 100,
    isAlive: (pid) => pid === 200,
    staleTempMs: 3_600_000,
    ...overrides,
  };
}

const removed = (facts: StoredFact[], r: SelectionRules) => selectGarbage(facts, r).remove.map((f) => f.path);

describe('gc selection', () => {
  test('an archive is referenced by module, version and checksum: other bytes of a served version are garbage', () => {
    const served = archive('o/lib', '1.0.0', SUM_A);
    const standIn = archive('o/lib', '1.0.0', SUM_B);
    const gone = archive('p/util', '0.1.0', SUM_A);
    const r = rules({ references: referencesOf([{ module: 'o/lib', version: '1.0.0', checksum: SUM_A }]) });
    assert.deepEqual(removed([served, standIn, gone], r), [standIn.path, gone.path]);
    // Referenced files are neither removed nor reported as kept.
    assert.deepEqual(selectGarbage([served], r), { remove: [], kept: [] });
  });

  test('assets belong to a version: any referenced line of it keeps them', () => {
    const r = rules({ references: referencesOf([{ module: 'o/tool', version: '1.0.0', checksum: SUM_B }]) });
    const kept = assets('o/tool', '1.0.0');
    const older = assets('o/tool', '0.9.0');
    assert.deepEqual(removed([kept, older], r), [older.path]);
  });

  test('[gc] keep pins modules by glob, referenced or not', () => {
    const r = rules({ pinned: moduleMatcher(['keep/*', 'deep/**']) });
    const facts = [
      archive('keep/a', '1.0.0', SUM_A),
      archive('deep/x/y', '1.0.0', SUM_A),
      assets('keep/b', '2.0.0'),
      archive('other/a', '1.0.0', SUM_A),
    ];
    const selection = selectGarbage(facts, r);
    assert.deepEqual(
      selection.remove.map((f) => f.path),
      [facts[3]?.path],
    );
    assert.deepEqual(
      selection.kept.map((k) => k.reason),
      ['pinned', 'pinned', 'pinned'],
    );
  });

  test('--older-than: a recent download keeps a file; a file never downloaded counts from its mtime', () => {
    const downloadedYesterday = archive('o/a', '1.0.0', SUM_A, 30 * DAY);
    const downloadedLongAgo = archive('o/b', '1.0.0', SUM_A, 30 * DAY);
    const writtenToday = archive('o/c', '1.0.0', SUM_A, 1000);
    const writtenLongAgo = archive('o/d', '1.0.0', SUM_A, 30 * DAY);
    const toolUsed = assets('o/e', '1.0.0', 30 * DAY);
    const r = rules({
      olderThanMs: 7 * DAY,
      downloads: {
        archives: new Map([
          ['o/a@1.0.0', NOW - DAY],
          ['o/b@1.0.0', NOW - 20 * DAY],
          // An asset record does not keep an archive, nor the other way round.
          ['o/e@1.0.0', NOW - DAY],
        ]),
        assets: new Map([['o/d@1.0.0', NOW - DAY]]),
      },
    });
    const selection = selectGarbage(
      [downloadedYesterday, downloadedLongAgo, writtenToday, writtenLongAgo, toolUsed],
      r,
    );
    assert.deepEqual(
      selection.remove.map((f) => f.path),
      [downloadedLongAgo.path, writtenLongAgo.path, toolUsed.path],
    );
    assert.deepEqual(
      selection.kept.map((k) => [k.fact.path, k.reason]),
      [
        [downloadedYesterday.path, 'recent'],
        [writtenToday.path, 'recent'],
      ],
    );
    // Without --older-than, age does not matter.
    assert.equal(selectGarbage([downloadedYesterday, writtenToday], rules()).remove.length, 2);
  });

  test('temp: a folder of this machine goes exactly when its process is gone; others when still for long', () => {
    const dead = temp('here-300', 1000, { host: 'here', pid: 300 });
    const live = temp('here-200', 10 * DAY, { host: 'here', pid: 200 });
    const mine = temp('here-100', 10 * DAY, { host: 'here', pid: 100 });
    const otherBusy = temp('there-300', 60_000, { host: 'there', pid: 300 });
    const otherStill = temp('there-301', 2 * 3_600_000, { host: 'there', pid: 301 });
    const leftoverNew = temp('abc.part', 60_000);
    const leftoverOld = temp('abc2.part', 2 * 3_600_000);
    const selection = selectGarbage(
      [dead, live, mine, otherBusy, otherStill, leftoverNew, leftoverOld],
      rules(),
    );
    assert.deepEqual(
      selection.remove.map((f) => f.path),
      [dead.path, otherStill.path, leftoverOld.path],
    );
    assert.ok(selection.kept.every((k) => k.reason === 'live'));
    // Temp entries are not module files: pins and --older-than do not apply to them.
    const pinnedAll = rules({ pinned: () => true, olderThanMs: 365 * DAY });
    assert.deepEqual(removed([dead], pinnedAll), [dead.path]);
  });
});

describe('gc scan of data/', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'mr-gc-scan-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('archives, version folders of assets (nested module names too) and temp entries', async () => {
    const layout = registryLayout(root);
    const put = async (path: string, text = 'x') => {
      await mkdir(join(path, '..'), { recursive: true });
      await writeFile(path, text);
    };
    await put(join(layout.packagesDir, 'o', 'lib', '1.0.0', `${SUM_A}.zip`), 'zip');
    await put(join(layout.packagesDir, 'o', 'lib', '1.0.0', `.${SUM_A}.zip.tmp-1-ab`));
    await put(join(layout.packagesDir, 'o', 'lib', '1.0.0', 'notes.txt')); // verify's business
    await put(join(layout.assetsDir, 'o', 'tool', '1.0.0', 'cli', 'cli.wasm'), 'wasm');
    await put(join(layout.assetsDir, 'o', 'tool', '1.0.0', 'cli', 'cli.wasm.sha256'), 'sum');
    // A nested module whose last segment reads as a version: `n/m/1.0.0` at version 2.0.0.
    await put(join(layout.assetsDir, 'n', 'm', '1.0.0', '2.0.0', 'm.wasm'));
    await put(join(layout.assetsDir, 'absent.json')); // not in a version folder: left alone
    await put(join(layout.tmpDir, 'host-12', 'a.part'), 'partial');
    await put(join(layout.tmpDir, 'stray.part'));

    const blobs = new FsBlobStore(layout.dataDir);
    const facts = await scanStoredFiles(
      layout,
      createArchiveStore(blobs),
      createAssetStore(blobs),
      new Set(['n/m/1.0.0']),
    );
    const summary = facts
      .map((f) =>
        f.kind === 'temp'
          ? `temp ${f.path.slice(root.length)} ${f.owner ? `${f.owner.host}:${f.owner.pid}` : '-'} ${f.bytes}`
          : `${f.kind} ${f.module}@${f.version} ${f.bytes}`,
      )
      .sort();
    assert.deepEqual(summary, [
      'archive o/lib@1.0.0 3',
      'assets n/m/1.0.0@2.0.0 1',
      'assets o/tool@1.0.0 7',
      `temp /data/packages/o/lib/1.0.0/.${SUM_A}.zip.tmp-1-ab - 1`,
      'temp /data/tmp/host-12 host:12 7',
      'temp /data/tmp/stray.part - 1',
    ]);
  });
});

describe('last downloads', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mr-last-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('records per module@version, flushed merged with what another server wrote (later time wins)', async () => {
    const file = join(dir, 'state', 'last-downloads.json');
    let now = NOW;
    const one = new LastDownloads(file, () => now);
    const two = new LastDownloads(file, () => now);
    await one.load();
    one.archive('o/a', '1.0.0');
    one.asset('o/t', '2.0.0');
    now += 1000;
    two.archive('o/a', '1.0.0');
    two.archive('o/b', '1.0.0');
    await one.flush();
    await two.flush();
    now += 1000;
    one.archive('o/c', '1.0.0');
    await one.flush(); // must not lose two's records
    const saved = await readLastDownloads(file);
    assert.deepEqual(Object.fromEntries(saved.archives), {
      'o/a@1.0.0': NOW + 1000,
      'o/b@1.0.0': NOW + 1000,
      'o/c@1.0.0': NOW + 2000,
    });
    assert.deepEqual(Object.fromEntries(saved.assets), { 'o/t@2.0.0': NOW });
  });

  test('bounded: past the limit the least recently downloaded record is forgotten', async () => {
    const file = join(dir, 'bounded.json');
    let now = NOW;
    const records = new LastDownloads(file, () => now++, 2);
    records.archive('o/a', '1.0.0');
    records.archive('o/b', '1.0.0');
    records.archive('o/a', '1.0.0'); // used again: now the newest
    records.archive('o/c', '1.0.0');
    await records.flush();
    assert.deepEqual([...(await readLastDownloads(file)).archives.keys()].sort(), ['o/a@1.0.0', 'o/c@1.0.0']);
  });

  test('a file that does not parse reads as no records', async () => {
    const file = join(dir, 'broken.json');
    await writeFile(file, '{"archives": [1, 2');
    assert.equal((await readLastDownloads(file)).archives.size, 0);
    const records = new LastDownloads(file, () => NOW);
    await records.load();
    records.archive('o/a', '1.0.0');
    await records.flush();
    assert.match(await readFile(file, 'utf8'), /"o\/a@1\.0\.0": "2026-12-05T12:00:00\.000Z"/);
  });

  test('asset URLs name their module and version', () => {
    assert.deepEqual(assetVersion('owner/name@1.0.0/cli/cli.wasm'), {
      module: 'owner/name',
      version: '1.0.0',
    });
    assert.deepEqual(assetVersion('t/js/test@0.1.0%2Bb1/test.wasm.sha256'), {
      module: 't/js/test',
      version: '0.1.0+b1',
    });
    assert.equal(assetVersion('owner@1.0.0/x.wasm'), undefined);
    assert.equal(assetVersion('owner/name/x.wasm'), undefined);
  });
});
