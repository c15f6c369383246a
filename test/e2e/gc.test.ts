/**
 * `moonbit-registry gc` end to end, on a registry mirrored from two upstreams ("main" and
 * "partner"):
 *
 * 1. Right after `source remove partner` its versions are still served, so gc keeps their
 *    archives and says why; after `index rebuild` gc removes partner's archives and prebuilt
 *    wasm, and only those (verify still passes).
 * 2. `[gc] keep` pins a module; `--dry-run` lists exactly what a real run then removes.
 * 3. `--older-than` keeps an archive a running serve sent recently (its download record).
 * 4. A large archive streaming from a running serve completes with the right checksum while gc
 *    removes it and its neighbours.
 * 5. Temp folders: a dead process's goes, a live one's stays.
 * 6. Pull-through: an archive a `serve --proxy` fetched (listed only by the proxy index) stays.
 * 7. A stand-in replaced by the winning source's archive is garbage: references name the checksum.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import http from 'node:http';
import { hostname } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { initRegistryWithSource, runCli, runCliOk, startServe, tempDir } from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import {
  buildFixture,
  checksumIn,
  type Fixture,
  formatIndexLine,
  pythonTimestamp,
} from '../support/fixture.js';
import { makeZip } from '../support/module-zip.js';
import { archiveUrl, download } from '../support/moon-client.js';

const LIB = 'alpha/lib';
const APP = 'alpha/app';
const UTIL = 'partner-org/util';
const KEEP = 'partner-org/keep';
const BIG = 'partner-org/big';
/** Far more than socket buffers hold, so a paused client keeps the server's file open. */
const BIG_BYTES = 32 * 1024 * 1024;

interface GcJson {
  dryRun: boolean;
  removed: Array<{
    kind: string;
    path: string;
    module?: string;
    version?: string;
    checksum?: string;
    bytes: number;
    files: number;
  }>;
  freed: number;
  counts: { archives: number; assets: number; temp: number };
  kept: { pinned: number; recent: number; live: number };
  references: { served: number; proxy: number; hosted: number };
  staleServed: number;
  failed: unknown[];
}

describe('gc', () => {
  let mainFx: Fixture;
  let partnerFx: Fixture;
  let main: FakeUpstream;
  let partner: FakeUpstream;
  let base: { root: string; remove: () => Promise<void> };
  let scratch: { path: string; remove: () => Promise<void> };
  let copies = 0;

  before(async () => {
    [mainFx, partnerFx] = await Promise.all([
      buildFixture({
        flavor: 'gc-main',
        filter: () => false,
        extraModules: [
          { module: LIB, version: '0.1.0' },
          { module: LIB, version: '0.2.0' },
          { module: APP, version: '1.0.0', deps: { [LIB]: '0.2.0' } },
        ],
      }),
      buildFixture({
        flavor: 'gc-partner',
        filter: () => false,
        extraModules: [
          { module: UTIL, version: '0.1.0' },
          { module: KEEP, version: '1.0.0' },
        ],
      }),
    ]);
    await addArchive(partnerFx, BIG, '1.0.0', bigArchive(BIG, '1.0.0'));
    main = await FakeUpstream.start({ fixture: mainFx });
    partner = await FakeUpstream.start({ fixture: partnerFx });
    base = await initRegistryWithSource('main', main.url, ['--priority', '10']);
    await runCliOk(
      ['source', 'add', 'partner', '--url', partner.url, '--index-url', partner.indexUrl, '--priority', '20'],
      { cwd: base.root },
    );
    await runCliOk(['mirror', '--full'], { cwd: base.root });
    scratch = await tempDir('mr-gc-');
  });

  after(async () => {
    await main?.stop();
    await partner?.stop();
    await base?.remove();
    await scratch?.remove();
    await mainFx?.cleanup();
    await partnerFx?.cleanup();
  });

  /** A fresh copy of the mirrored registry, so each test starts from the same state. */
  async function registryCopy(): Promise<string> {
    const root = path.join(scratch.path, `r${++copies}`);
    await fs.cp(base.root, root, { recursive: true });
    return root;
  }

  function archivePath(root: string, module: string, version: string, fixture: Fixture): string {
    return path.join(
      root,
      'data',
      'packages',
      ...module.split('/'),
      version,
      `${checksumIn(fixture, module, version)}.zip`,
    );
  }

  const partnerArchives = (root: string) => [
    archivePath(root, UTIL, '0.1.0', partnerFx),
    archivePath(root, KEEP, '1.0.0', partnerFx),
    archivePath(root, BIG, '1.0.0', partnerFx),
  ];
  const mainArchives = (root: string) => [
    archivePath(root, LIB, '0.1.0', mainFx),
    archivePath(root, LIB, '0.2.0', mainFx),
    archivePath(root, APP, '1.0.0', mainFx),
  ];

  async function gcJson(root: string, args: string[] = []): Promise<GcJson> {
    const result = await runCliOk(['gc', '--json', ...args], { cwd: root });
    return JSON.parse(result.stdout) as GcJson;
  }

  async function removePartner(root: string): Promise<void> {
    await runCliOk(['source', 'remove', 'partner'], { cwd: root });
    await runCliOk(['index', 'rebuild'], { cwd: root });
  }

  it("keeps a removed source's archives while they are served; after index rebuild removes them, and only them", async () => {
    const root = await registryCopy();
    const wasm = async (module: string, version: string) => {
      const dir = path.join(root, 'data', 'assets', ...module.split('/'), version);
      const name = module.split('/').at(-1) as string;
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, `${name}.wasm`), 'wasm');
      // A true .sha256: verify checks the pair.
      const sum = createHash('sha256').update('wasm').digest('hex');
      await fs.writeFile(path.join(dir, `${name}.wasm.sha256`), `${sum}  ${name}.wasm\n`);
      return dir;
    };
    const partnerWasm = await wasm(UTIL, '0.1.0');
    const mainWasm = await wasm(APP, '1.0.0');

    await runCliOk(['source', 'remove', 'partner'], { cwd: root });
    const early = await gcJson(root);
    assert.deepEqual(early.removed, [], 'still served: nothing may go');
    assert.equal(early.staleServed, 3);
    const human = await runCliOk(['gc'], { cwd: root });
    assert.match(human.stdout, /Removed 0 archives, 0 asset folders, 0 temp entries: 0 B freed\./);
    assert.match(human.stderr, /3 served versions no enabled source offers any more stay.*index rebuild/);
    for (const file of [...partnerArchives(root), ...mainArchives(root)]) await fs.access(file);

    await runCliOk(['index', 'rebuild'], { cwd: root });
    const report = await gcJson(root);
    assert.equal(report.dryRun, false);
    assert.deepEqual(
      report.removed.map((e) => `${e.kind} ${e.module}@${e.version}`),
      [`archive ${BIG}@1.0.0`, `archive ${KEEP}@1.0.0`, `archive ${UTIL}@0.1.0`, `assets ${UTIL}@0.1.0`],
    );
    const archive = report.removed.find((e) => e.module === UTIL && e.kind === 'archive');
    assert.equal(archive?.checksum, checksumIn(partnerFx, UTIL, '0.1.0'));
    assert.equal(archive?.path, `data/packages/${UTIL}/0.1.0/${archive?.checksum}.zip`);
    assert.deepEqual(report.counts, { archives: 3, assets: 1, temp: 0 });
    assert.equal(
      report.freed,
      report.removed.reduce((sum, e) => sum + e.bytes, 0),
    );
    assert.ok(report.freed > BIG_BYTES, `freed ${report.freed} bytes`);
    assert.deepEqual(report.references, { served: 3, proxy: 0, hosted: 0 });
    assert.equal(report.staleServed, 0);
    assert.deepEqual(report.failed, []);

    for (const file of partnerArchives(root)) await assert.rejects(fs.access(file), `${file} still there`);
    await assert.rejects(fs.access(partnerWasm));
    // Emptied folders go too.
    await assert.rejects(fs.access(path.join(root, 'data', 'packages', 'partner-org')));
    for (const file of mainArchives(root)) await fs.access(file);
    await fs.access(mainWasm);
    await runCliOk(['verify'], { cwd: root });
    assert.deepEqual((await gcJson(root)).removed, [], 'a second run finds nothing');
  });

  it('[gc] keep pins a module; --dry-run lists exactly what a real run removes, and removes nothing', async () => {
    const root = await registryCopy();
    const config = path.join(root, 'registry.toml');
    await fs.appendFile(config, `\n[gc]\nkeep = ["${KEEP}"]\n`);
    await removePartner(root);

    const dry = await gcJson(root, ['--dry-run']);
    assert.equal(dry.dryRun, true);
    assert.deepEqual(
      dry.removed.map((e) => e.module),
      [BIG, UTIL],
    );
    assert.equal(dry.kept.pinned, 1);
    for (const file of partnerArchives(root)) await fs.access(file);
    const dryHuman = await runCliOk(['gc', '--dry-run'], { cwd: root });
    assert.match(dryHuman.stdout, new RegExp(`would remove archive ${UTIL}@0\\.1\\.0 `));
    assert.match(dryHuman.stdout, /Would remove 2 archives, .*dry run, nothing removed/);
    assert.match(dryHuman.stdout, /Kept, though not referenced: 1 pinned by \[gc\] keep/);
    for (const file of partnerArchives(root)) await fs.access(file);

    const real = await gcJson(root);
    assert.deepEqual(
      real.removed,
      dry.removed.map((e) => ({ ...e })),
    );
    assert.equal(real.freed, dry.freed);
    await fs.access(archivePath(root, KEEP, '1.0.0', partnerFx));
    await assert.rejects(fs.access(archivePath(root, UTIL, '0.1.0', partnerFx)));
  });

  it('--older-than keeps an archive a running serve sent recently; a bad duration is refused', async () => {
    const root = await registryCopy();
    const server = await startServe(root);
    try {
      await download(server.url, UTIL, '0.1.0', checksumIn(partnerFx, UTIL, '0.1.0'));
    } finally {
      await server.stop(); // flushes the download records
    }
    const records = JSON.parse(
      await fs.readFile(path.join(root, 'data', 'state', 'last-downloads.json'), 'utf8'),
    ) as { archives: Record<string, string> };
    assert.ok(records.archives[`${UTIL}@0.1.0`], JSON.stringify(records));
    // Every archive was written long ago: only the download record can keep one.
    const monthAgo = new Date(Date.now() - 30 * 86_400_000);
    for (const file of [...partnerArchives(root), ...mainArchives(root)])
      await fs.utimes(file, monthAgo, monthAgo);
    await removePartner(root);

    const bad = await runCli(['gc', '--older-than', 'soon'], { cwd: root });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /error: --older-than "soon" is not a duration/);

    const report = await gcJson(root, ['--older-than', '7d']);
    assert.deepEqual(
      report.removed.map((e) => e.module),
      [BIG, KEEP],
    );
    assert.equal(report.kept.recent, 1);
    await fs.access(archivePath(root, UTIL, '0.1.0', partnerFx));
    assert.deepEqual(
      (await gcJson(root)).removed.map((e) => e.module),
      [UTIL],
      'without --older-than it goes',
    );
  });

  it('a large archive streaming from a running serve completes with the right checksum while gc removes it and its neighbours', async () => {
    const root = await registryCopy();
    const server = await startServe(root);
    try {
      const checksum = checksumIn(partnerFx, BIG, '1.0.0');
      const stream = await slowDownload(archiveUrl(server.url, BIG, '1.0.0'));
      await removePartner(root);
      const report = await gcJson(root);
      assert.deepEqual(
        report.removed.map((e) => e.module),
        [BIG, KEEP, UTIL],
      );
      await assert.rejects(fs.access(archivePath(root, BIG, '1.0.0', partnerFx)), 'the file is gone');
      assert.ok(stream.received() < BIG_BYTES, `only ${stream.received()} bytes were read before gc`);
      const body = await stream.finish();
      assert.equal(body.length, partnerFx.modules.get(BIG)?.get('1.0.0')?.size);
      assert.equal(createHash('sha256').update(body).digest('hex'), checksum);
      // A new request for it finds nothing, and the rest is served as before.
      const gone = await fetch(archiveUrl(server.url, UTIL, '0.1.0'));
      assert.equal(gone.status, 404);
      await gone.body?.cancel();
      await download(server.url, APP, '1.0.0', checksumIn(mainFx, APP, '1.0.0'));
    } finally {
      await server.stop();
    }
  });

  it("temp: a dead process's folder goes, a live process's stays", async () => {
    const root = await registryCopy();
    const tmp = path.join(root, 'data', 'tmp');
    const deadPid = await exitedPid();
    const dead = path.join(tmp, `${hostname()}-${deadPid}`);
    const live = path.join(tmp, `${hostname()}-${process.pid}`);
    for (const dir of [dead, live]) {
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, `${'c'.repeat(64)}.${deadPid}.abcd.part`), 'partial download');
    }
    const report = await gcJson(root);
    assert.deepEqual(
      report.removed.map((e) => [e.kind, e.path, e.files, e.bytes]),
      [['temp', `data/tmp/${hostname()}-${deadPid}`, 1, 16]],
    );
    assert.equal(report.kept.live, 1);
    await assert.rejects(fs.access(dead));
    await fs.access(live);
  });

  it('pull-through: an archive serve --proxy fetched, listed only by the proxy index, stays', async () => {
    const root = await registryCopy();
    const added = await mainFx.addVersion(LIB, '0.3.0');
    const stored = path.join(root, 'data', 'packages', ...LIB.split('/'), '0.3.0', `${added.checksum}.zip`);
    const server = await startServe(root, ['--proxy']);
    try {
      // Its first sync brings 0.3.0 into the proxy index.
      await waitFor(async () => (await (await fetch(`${server.url}/user/${LIB}`)).text()).includes('0.3.0'));
      await download(server.url, LIB, '0.3.0', added.checksum);
      // Stored once the client has its bytes (the rename follows the last byte).
      await waitFor(async () => await fs.access(stored).then(() => true));
    } finally {
      await server.stop();
    }
    const report = await gcJson(root);
    assert.deepEqual(report.removed, []);
    assert.ok(report.references.proxy >= 6, JSON.stringify(report.references));
    await fs.access(stored);
  });

  it('a replaced stand-in: the other bytes of a served version go, the served ones stay', async () => {
    const root = await registryCopy();
    // Only partner has 0.4.0 at first: its archive is stored and served.
    const standIn = await partnerFx.addVersion(LIB, '0.4.0');
    await runCliOk(['mirror', '--full'], { cwd: root });
    const standInPath = path.join(
      root,
      'data',
      'packages',
      ...LIB.split('/'),
      '0.4.0',
      `${standIn.checksum}.zip`,
    );
    await fs.access(standInPath);
    // Then main, which wins, lists it with other bytes: the next mirror serves main's.
    const winner = await mainFx.addVersion(LIB, '0.4.0');
    assert.notEqual(winner.checksum, standIn.checksum);
    await runCliOk(['mirror', '--full'], { cwd: root });
    const report = await gcJson(root);
    assert.deepEqual(
      report.removed.map((e) => [e.module, e.version, e.checksum]),
      [[LIB, '0.4.0', standIn.checksum]],
    );
    await assert.rejects(fs.access(standInPath));
    const server = await startServe(root);
    try {
      await download(server.url, LIB, '0.4.0', winner.checksum);
    } finally {
      await server.stop();
    }
  });
});

/** Puts an archive with these bytes into a fixture, with its index line, as one new commit. */
async function addArchive(fixture: Fixture, module: string, version: string, archive: Buffer): Promise<void> {
  const checksum = createHash('sha256').update(archive).digest('hex');
  await fs.writeFile(fixture.archivePath(checksum), archive);
  const line = formatIndexLine({ name: module, version, checksum, created_at: pythonTimestamp() });
  await fixture.appendIndexLines(module, [line]);
  const versions = fixture.modules.get(module) ?? new Map();
  versions.set(version, { checksum, size: archive.length, line });
  fixture.modules.set(module, versions);
}

/** A valid module zip of about BIG_BYTES (random, so stored as is). */
function bigArchive(module: string, version: string): Buffer {
  const zip = makeZip([
    { name: 'moon.mod.json', data: JSON.stringify({ name: module, version }) },
    { name: 'blob.bin', data: randomBytes(BIG_BYTES - 400) },
  ]);
  return zip;
}

/** A GET that reads the first chunk, then waits: the server stays in the middle of the body. */
async function slowDownload(url: string): Promise<{ received(): number; finish(): Promise<Buffer> }> {
  const chunks: Buffer[] = [];
  let received = 0;
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get(url, { headers: { 'User-Agent': 'mooncake/0.1.0' } }, resolve).on('error', reject);
  });
  assert.equal(res.statusCode, 200);
  const first = await new Promise<Buffer>((resolve, reject) => {
    res.once('data', resolve);
    res.once('error', reject);
  });
  res.pause();
  chunks.push(first);
  received += first.length;
  return {
    received: () => received,
    finish: () =>
      new Promise<Buffer>((resolve, reject) => {
        res.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          received += chunk.length;
        });
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('the response was cut')));
        res.resume();
      }),
  };
}

/** The pid of a process that has exited (and was reaped). */
function exitedPid(): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', '0']);
    child.on('error', reject);
    child.on('close', () => resolve(child.pid as number));
  });
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('timed out');
}
