/**
 * Air-gapped transfer, end to end: `export` from registry A (mirrored from the fake upstream,
 * with a published module, prebuilt wasm and symbols files) and `import` into registries made
 * by `init`, with the upstream closed.
 *
 * 1. A full bundle imported into a fresh B: B's served index files are A's, byte for byte (same
 *    blob ids), `index rebuild` keeps them, and the moon-like client installs every module from
 *    B's `serve`; assets and symbols arrive.
 * 2. After a new mirror and a publish in A, `--since` (the earlier bundle, or its commit)
 *    carries only the new archives (counted in the manifest); B imports it; a registry that
 *    never had the prerequisite refuses it, unchanged.
 * 3. A flipped byte and a truncated file are refused and leave B unchanged; so is a bundle
 *    carrying an asset of a version its index does not serve, a wasm its `.sha256` denies, or
 *    half an asset; an asset B stores already keeps its bytes.
 * 4. A bundle from another registry is refused unless --force (and so is any bundle into a
 *    registry that serves modules of its own).
 * 5. SIGKILL while a large bundle is imported leaves B serving what it served before; the
 *    import run again succeeds.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { zipSync } from 'fflate';
import yazl from 'yazl';
import { openBundleFile } from '../../src/transfer/bundle-file.js';
import { cliPath, initRegistryWithSource, runCli, runCliOk, startServe, tempDir } from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, type Fixture, sha256Hex } from '../support/fixture.js';
import { git } from '../support/git.js';
import { download, install, readIndexDir, update } from '../support/moon-client.js';

const LIB = 'alpha/lib';
const APP = 'alpha/app';
const TOOL = 'beta/tool';
const PUBLISHED = 'company/widget';
/** alpha/app@1.0.0's prebuilt wasm in data/assets, without `.wasm`. */
const APP_WASM = 'data/assets/alpha/app/1.0.0/cmd/main/main';
/** The upstream's editor symbols: A mirrors them, B gets them only from the bundle. */
const SYMBOLS = Buffer.from(zipSync({ 'alpha/lib/symbols.json': new TextEncoder().encode('{"lib":1}') }));

interface ExportJson {
  commit: string;
  prerequisite: string | null;
  files: { archives: number; assets: number; symbols: number; total: number };
  bytes: number;
  seconds: number;
}

interface ImportJson {
  source: string;
  commit: string;
  newArchives: number;
  files: { archives: number; assets: number; symbols: number; total: number };
  index: { commit: string; changed: boolean; versions: number };
}

describe('export and import', () => {
  let fx: Fixture;
  let upstream: FakeUpstream;
  let a: { root: string; remove: () => Promise<void> };
  let scratch: { path: string; remove: () => Promise<void> };
  let count = 0;
  let fullBundle: string;
  let fullCommit: string;

  before(async () => {
    fx = await buildFixture({
      flavor: 'transfer',
      filter: () => false,
      extraModules: [
        { module: LIB, version: '0.1.0' },
        { module: LIB, version: '0.2.0' },
        { module: APP, version: '1.0.0', deps: { [LIB]: '0.2.0' } },
        { module: TOOL, version: '1.0.0' },
      ],
    });
    upstream = await FakeUpstream.start({ fixture: fx, symbols: SYMBOLS });
    a = await initRegistryWithSource('up', upstream.url);
    scratch = await tempDir('mr-transfer-');
    await runCliOk(['mirror', '-q', 'alpha/*'], { cwd: a.root });
    // A prebuilt wasm written by hand (the symbols come from the upstream with the mirror), and
    // a lone wasm without its .sha256, which is no stored asset and is not exported.
    const wasm = randomBytes(2048);
    await writeFile(path.join(a.root, `${APP_WASM}.wasm`), wasm);
    await writeFile(path.join(a.root, `${APP_WASM}.wasm.sha256`), `${sha256Hex(wasm)}  main.wasm\n`);
    await writeFile(path.join(a.root, 'data/assets/alpha/lib/0.2.0/lib.wasm'), randomBytes(64));
    fullBundle = path.join(scratch.path, 'full.bundle');
    const exported = await exportJson(a.root, [fullBundle]);
    fullCommit = exported.commit;
  });

  after(async () => {
    await upstream?.stop();
    await a?.remove();
    await scratch?.remove();
    await fx?.cleanup();
  });

  async function freshRegistry(): Promise<string> {
    const root = path.join(scratch.path, `b${++count}`);
    await runCliOk(['init', root, '--name', `b${count}`]);
    return root;
  }

  async function offline<T>(work: () => Promise<T>): Promise<T> {
    await upstream.close();
    try {
      return await work();
    } finally {
      await upstream.restart();
    }
  }

  test('a full bundle imported offline into a fresh registry serves what A serves; moon installs every module', async () => {
    const manifest = await manifestOf(fullBundle);
    const servedLines = await servedVersions(a.root);
    assert.equal(servedLines.size, 3, 'A serves alpha/lib 0.1.0, 0.2.0 and alpha/app 1.0.0');
    assert.equal(manifest.filter((p) => p.startsWith('packages/')).length, 3);
    assert.deepEqual(manifest.filter((p) => !p.startsWith('packages/')).sort(), [
      'assets/alpha/app/1.0.0/cmd/main/main.wasm',
      'assets/alpha/app/1.0.0/cmd/main/main.wasm.sha256',
      'index.bundle',
      'symbols/up/symbols.zip',
    ]);
    await offline(async () => {
      const b = await freshRegistry();
      const imported = await importJson(b, [fullBundle]);
      assert.equal(imported.newArchives, 3);
      assert.equal(imported.commit, fullCommit);
      assert.deepEqual(await servedTree(b), await servedTree(a.root), 'the same index files, byte for byte');
      await runCliOk(['index', 'rebuild'], { cwd: b });
      assert.deepEqual(await servedTree(b), await servedTree(a.root), 'a rebuild keeps serving the import');
      // A mirror of everything the bundle source lists: its index is read, never fetched.
      await runCliOk(['source', 'disable', 'mooncakes'], { cwd: b });
      await runCliOk(['source', 'default', imported.source], { cwd: b });
      const mirrored = await runCliOk(['mirror', '--full'], { cwd: b });
      assert.doesNotMatch(mirrored.stderr, /warning|cannot fetch/);
      assert.deepEqual(await servedTree(b), await servedTree(a.root), 'a mirror keeps serving the import');
      for (const file of [`${APP_WASM}.wasm`, `${APP_WASM}.wasm.sha256`]) {
        assert.deepEqual(await fs.readFile(path.join(b, file)), await fs.readFile(path.join(a.root, file)));
      }
      // B serves A's symbols as its bundle source's (B's own mooncakes source has none).
      await installEverything(b, await servedVersions(a.root), SYMBOLS);
    });
  });

  test('an incremental export carries only what is new, and needs its prerequisite', async () => {
    const root = await copyOf(a.root);
    const b = await freshRegistry();
    await offline(() => importJson(b, [fullBundle]));
    await fx.addVersion(LIB, '0.3.0');
    await runCliOk(['mirror', '-q', 'alpha/*'], { cwd: root });
    await publishModule(root, PUBLISHED, '1.0.0');

    const inc = path.join(scratch.path, `inc-${count}.bundle`);
    const exported = await exportJson(root, [inc, '--since', fullBundle]);
    assert.equal(exported.prerequisite, fullCommit);
    const files = await manifestOf(inc);
    assert.deepEqual(
      files.sort(),
      [
        'index.bundle',
        `packages/${PUBLISHED}/1.0.0/${await servedChecksum(root, PUBLISHED, '1.0.0')}.zip`,
        `packages/${LIB}/0.3.0/${await servedChecksum(root, LIB, '0.3.0')}.zip`,
      ].sort(),
      'two new archives and the index; the symbols the full bundle carried are left out',
    );
    const byCommit = await exportJson(root, [
      path.join(scratch.path, `inc-c-${count}.bundle`),
      '--since',
      fullCommit,
    ]);
    assert.deepEqual(byCommit.files, { archives: 2, assets: 0, symbols: 1, total: 4 });

    await offline(async () => {
      const imported = await importJson(b, [inc]);
      assert.equal(imported.newArchives, 2);
      assert.deepEqual(await servedTree(b), await servedTree(root));
      await installEverything(b, await servedVersions(root));

      const never = await freshRegistry();
      const before = await snapshot(never);
      const refused = await runCli(['import', inc], { cwd: never });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /continues from commit [0-9a-f]{12} .*never imported/);
      assert.match(refused.stderr, /hint: import a full bundle first/);
      assert.deepEqual(await snapshot(never), before, 'nothing changed');
    });
  });

  test('a flipped byte and a truncated file are refused, and the registry is unchanged', async () => {
    const bytes = await fs.readFile(fullBundle);
    // Entries are stored, not deflated: an archive's bytes are in the bundle as they are.
    const archive = fx.archiveFor(LIB, '0.2.0') as Buffer;
    const at = bytes.indexOf(archive);
    assert.ok(at > 0, 'the archive is in the bundle verbatim');
    const flipped = Buffer.from(bytes);
    const middle = at + Math.floor(archive.length / 2);
    flipped[middle] = (flipped[middle] as number) ^ 0x01;
    const cases: Array<[string, Buffer, RegExp]> = [
      ['flipped', flipped, /is damaged: packages\/alpha\/lib\/0\.2\.0\/.*sha256/],
      ['truncated', bytes.subarray(0, Math.floor(bytes.length * 0.7)), /not a whole moonbit-registry bundle/],
      ['cut-short', bytes.subarray(0, bytes.length - 10), /not a whole moonbit-registry bundle/],
    ];
    const b = await freshRegistry();
    for (const [name, content, message] of cases) {
      const file = path.join(scratch.path, `${name}.bundle`);
      await fs.writeFile(file, content);
      const before = await snapshot(b);
      const result = await runCli(['import', file], { cwd: b });
      assert.equal(result.code, 1, `${name}: refused`);
      assert.match(result.stderr, message, name);
      assert.deepEqual(await snapshot(b), before, `${name}: nothing changed`);
    }
    await importJson(b, [fullBundle]); // and the whole file still imports
  });

  test('a bundle carrying assets of versions it does not serve, or a wasm its .sha256 denies, is refused', async () => {
    const b = await freshRegistry();
    await importJson(b, [fullBundle]);
    const before = await snapshot(b);
    const stored = await fs.readFile(path.join(b, `${APP_WASM}.wasm`));
    const evil = randomBytes(512);
    const cases: Array<[string, Record<string, Buffer>, RegExp]> = [
      [
        // beta/tool is not in A's index: a bundle must not plant another module's tool.
        'foreign',
        {
          'assets/beta/tool/1.0.0/tool.wasm': evil,
          'assets/beta/tool/1.0.0/tool.wasm.sha256': Buffer.from(`${sha256Hex(evil)}  tool.wasm\n`),
        },
        /assets\/beta\/tool\/1\.0\.0\/tool\.wasm(\.sha256)? is no asset of a version its index serves/,
      ],
      [
        'mismatch',
        {
          'assets/alpha/lib/0.2.0/lib.wasm': evil,
          'assets/alpha/lib/0.2.0/lib.wasm.sha256': Buffer.from(`${'0'.repeat(64)}  lib.wasm\n`),
        },
        /the wasm of alpha\/lib@0\.2\.0 does not match its \.sha256/,
      ],
      [
        'half',
        { 'assets/alpha/lib/0.2.0/lib.wasm': evil },
        /the asset of alpha\/lib@0\.2\.0 lacks its \.sha256/,
      ],
    ];
    for (const [name, extra, message] of cases) {
      const file = path.join(scratch.path, `${name}-assets.bundle`);
      await repack(fullBundle, file, extra);
      const result = await runCli(['import', file], { cwd: b });
      assert.equal(result.code, 1, `${name}: refused`);
      assert.match(result.stderr, message, name);
      assert.deepEqual(await snapshot(b), before, `${name}: nothing changed`);
    }
    // Refused as a first import: not even the bundle source's repository is left behind.
    const fresh = await freshRegistry();
    const untouched = await snapshot(fresh);
    const first = await runCli(['import', path.join(scratch.path, 'foreign-assets.bundle')], { cwd: fresh });
    assert.equal(first.code, 1);
    assert.deepEqual(await snapshot(fresh), untouched, 'a refused first import leaves nothing');
    // A package stored already keeps its bytes: a bundle never replaces what is served.
    const other = randomBytes(2048);
    const replacing = path.join(scratch.path, 'replacing.bundle');
    await repack(fullBundle, replacing, {
      [`${APP_WASM.replace('data/', '')}.wasm`]: other,
      [`${APP_WASM.replace('data/', '')}.wasm.sha256`]: Buffer.from(`${sha256Hex(other)}  main.wasm\n`),
    });
    const kept = await runCli(['import', replacing], { cwd: b });
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stderr, /kept the stored asset of alpha\/app@1\.0\.0\/cmd\/main/);
    assert.deepEqual(await fs.readFile(path.join(b, `${APP_WASM}.wasm`)), stored);
  });

  test('a bundle from another registry is refused unless --force', async () => {
    const c = await initRegistryWithSource('up', upstream.url);
    try {
      await runCliOk(['mirror', '-q', TOOL], { cwd: c.root });
      const other = path.join(scratch.path, 'other.bundle');
      await exportJson(c.root, [other]);
      const b = await freshRegistry();
      await importJson(b, [fullBundle]);
      const before = await snapshot(b);
      const refused = await runCli(['import', other], { cwd: b });
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        /comes from registry "e2e" \(id [^)]+\), but this registry imports from "e2e"/,
      );
      assert.match(refused.stderr, /hint: pass --force/);
      assert.deepEqual(await snapshot(b), before);

      // A registry that serves modules of its own and never imported: it refuses any bundle.
      const own = await runCli(['import', other], { cwd: a.root });
      assert.equal(own.code, 1);
      assert.match(own.stderr, /already serves modules of its own/);

      const forced = await importJson(b, [other, '--force']);
      assert.notEqual(forced.source, 'e2e', 'a source of its own');
      const served = await servedVersions(b);
      assert.ok(served.has(`${TOOL}@1.0.0`) && served.has(`${APP}@1.0.0`), 'both registries served');
    } finally {
      await c.remove();
    }
  });

  test('SIGKILL during an import leaves the registry serving what it served before; the import then succeeds', async (t) => {
    const root = await copyOf(a.root);
    // A large file keeps the import busy long enough to be killed mid-way, at a moment seen.
    // (A's served symbols.zip: export carries it whole.)
    await writeFile(path.join(root, 'data/symbols/up/symbols.zip'), randomBytes(48 * 1024 * 1024));
    await publishModule(root, 'company/kill', '1.0.0');
    const big = path.join(scratch.path, 'big.bundle');
    await exportJson(root, [big, '--since', fullBundle]);
    const b = await freshRegistry();
    await importJson(b, [fullBundle]);
    const servedBefore = await servedTree(b);
    const headBefore = await head(b);
    // Every file a kill may leave in data/symbols or data/assets: one of the two bundles' whole files.
    const whole = new Set<string>();
    for (const file of [fullBundle, big]) {
      const bundle = await openBundleFile(file);
      bundle.close();
      // Symbols land under B's name for the bundle source: known by their bytes alone.
      for (const f of bundle.manifest.files) {
        whole.add(f.path.startsWith('symbols/') ? `symbols ${f.sha256}` : `${f.path} ${f.sha256}`);
      }
    }

    // Killed while unpacking (its staging folder is there), then at later moments.
    const kills: Array<'staging' | number> = ['staging', 400, 800, 1200, 1600];
    let landed = 0;
    for (const when of kills) {
      const child = spawn(process.execPath, [cliPath, 'import', '-q', big], { cwd: b, stdio: 'ignore' });
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      if (when === 'staging') await waitFor(() => stagingExists(b), 20_000);
      else await delay(when);
      child.kill('SIGKILL');
      const code = await exited;
      if (code === 0) continue; // finished before the kill: nothing to check here
      landed++;
      for (const kind of ['symbols', 'assets']) {
        for (const rel of await fs.readdir(path.join(b, 'data', kind), { recursive: true })) {
          const file = path.join(b, 'data', kind, rel);
          if (!(await fs.stat(file)).isFile()) continue;
          const bytes = await fs.readFile(file);
          if (kind === 'symbols' && rel.endsWith('symbols.json')) {
            JSON.parse(bytes.toString('utf8')); // B's own record, written atomically
            continue;
          }
          const known =
            kind === 'symbols' ? `symbols ${sha256Hex(bytes)}` : `${kind}/${rel} ${sha256Hex(bytes)}`;
          assert.ok(whole.has(known), `killed (${when}): ${kind}/${rel} is a whole file`);
        }
      }
      const now = await head(b);
      if (now === headBefore) {
        assert.deepEqual(await servedTree(b), servedBefore, `killed (${when}): the index is unchanged`);
        const expected = await servedVersions(b);
        await offline(() => installEverything(b, expected));
      } else {
        // Killed after the served index moved: then it is the complete import.
        assert.deepEqual(await servedTree(b), await servedTree(root), `killed (${when}) after publishing`);
      }
      if (when === 'staging') assert.equal(now, headBefore, 'killed mid-unpack: nothing served changed');
    }
    t.diagnostic(`${landed} of ${kills.length} kills landed on a running import`);
    assert.ok(landed >= 1);
    await importJson(b, [big]);
    assert.deepEqual(await servedTree(b), await servedTree(root));
    assert.equal(await stagingExists(b), false, 'the import cleared what killed imports left');

    // A first import killed at any moment: run again, it is accepted (the registry serves nothing
    // of its own yet, whatever archives the killed run moved in) and completes.
    for (const ms of [200, 350, 500, 650, 800, 950]) {
      const fresh = await freshRegistry();
      const child = spawn(process.execPath, [cliPath, 'import', '-q', fullBundle], {
        cwd: fresh,
        stdio: 'ignore',
      });
      const exited = new Promise((resolve) => child.on('close', resolve));
      await delay(ms);
      child.kill('SIGKILL');
      await exited;
      await importJson(fresh, [fullBundle]);
      assert.deepEqual(
        await servedTree(fresh),
        await servedTree(a.root),
        `first import killed after ${ms} ms`,
      );
    }
    await importJson(b, [big]);
    assert.deepEqual(await servedTree(b), await servedTree(root));
    assert.equal(await stagingExists(b), false, 'the import cleared what killed imports left');
    await offline(async () => installEverything(b, await servedVersions(b)));
  });
});

/** A copy of bundle `from` with `extra` entries added or replaced, listed in its manifest as export would. */
async function repack(from: string, to: string, extra: Record<string, Buffer>): Promise<void> {
  const bundle = await openBundleFile(from);
  const zip = new yazl.ZipFile();
  const written = pipeline(zip.outputStream, createWriteStream(to));
  try {
    const files = bundle.manifest.files.filter((f) => !(f.path in extra));
    for (const f of files) {
      const chunks: Buffer[] = [];
      for await (const chunk of await bundle.openEntry(bundle.entries.get(f.path) as never))
        chunks.push(chunk);
      zip.addBuffer(Buffer.concat(chunks), f.path, { compress: false });
    }
    for (const [name, bytes] of Object.entries(extra)) {
      zip.addBuffer(bytes, name, { compress: false });
      files.push({ path: name, sha256: sha256Hex(bytes), size: bytes.length });
    }
    zip.addBuffer(Buffer.from(JSON.stringify({ ...bundle.manifest, files })), 'manifest.json', {
      compress: false,
    });
    zip.end();
    await written;
  } finally {
    bundle.close();
  }
}

async function writeFile(file: string, content: Buffer | string): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, content);
}

async function copyOf(root: string): Promise<string> {
  const copy = `${root}-copy-${randomBytes(3).toString('hex')}`;
  await fs.cp(root, copy, { recursive: true });
  return copy;
}

async function exportJson(root: string, args: string[]): Promise<ExportJson> {
  const result = await runCliOk(['export', '--json', ...args], { cwd: root });
  return JSON.parse(result.stdout) as ExportJson;
}

async function importJson(root: string, args: string[]): Promise<ImportJson> {
  const result = await runCliOk(['import', '--json', ...args], { cwd: root });
  return JSON.parse(result.stdout) as ImportJson;
}

async function manifestOf(file: string): Promise<string[]> {
  const bundle = await openBundleFile(file);
  bundle.close();
  return bundle.manifest.files.map((f) => f.path);
}

async function head(root: string): Promise<string> {
  return (await git(['--git-dir', path.join(root, 'data/index'), 'rev-parse', 'main'])).trim();
}

/** path -> blob id of every file the served index holds. */
async function servedTree(root: string): Promise<string> {
  return git(['--git-dir', path.join(root, 'data/index'), 'ls-tree', '-r', 'main']);
}

async function servedVersions(root: string): Promise<Map<string, string>> {
  const clone = path.join(root, '..', `clone-${randomBytes(4).toString('hex')}`);
  await git(['clone', '-q', path.join(root, 'data/index'), clone]);
  try {
    const index = await readIndexDir(clone);
    const versions = new Map<string, string>();
    for (const [module, entries] of index.modules) {
      for (const [version, entry] of entries) versions.set(`${module}@${version}`, entry.checksum ?? '');
    }
    return versions;
  } finally {
    await fs.rm(clone, { recursive: true, force: true });
  }
}

async function servedChecksum(root: string, module: string, version: string): Promise<string> {
  const checksum = (await servedVersions(root)).get(`${module}@${version}`);
  assert.ok(checksum, `${module}@${version} is served`);
  return checksum;
}

/** What a refused import must not change: the served index, the archives, assets, the config. */
async function snapshot(root: string) {
  const files = await fs.readdir(path.join(root, 'data/packages'), { recursive: true });
  const assets = await fs.readdir(path.join(root, 'data/assets'), { recursive: true }).catch(() => []);
  const sources = await fs.readdir(path.join(root, 'data/sources')).catch(() => []);
  return {
    head: await head(root),
    packages: files.sort(),
    assets: assets.sort(),
    sources: sources.sort(),
    config: await fs.readFile(path.join(root, 'registry.toml'), 'utf8'),
  };
}

async function stagingExists(root: string): Promise<boolean> {
  const tmp = path.join(root, 'data/tmp');
  for (const name of await fs.readdir(tmp).catch(() => [] as string[])) {
    if (await fs.stat(path.join(tmp, name, 'import')).catch(() => undefined)) return true;
  }
  return false;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await delay(5);
  }
}

/** A module folder published into `root` with the CLI (a hosted module). */
async function publishModule(root: string, module: string, version: string): Promise<void> {
  const dir = path.join(root, '..', `src-${randomBytes(3).toString('hex')}`);
  await writeFile(path.join(dir, 'moon.mod.json'), JSON.stringify({ name: module, version }));
  await writeFile(path.join(dir, 'src/lib/hello.mbt'), `pub fn hello() -> String { "${module}" }\n`);
  await writeFile(path.join(dir, 'src/lib/moon.pkg.json'), '{}');
  await runCliOk(['publish', dir], { cwd: root });
}

/** `serve` the registry; the moon-like client clones its index and downloads every version. */
async function installEverything(
  root: string,
  expected: Map<string, string>,
  symbols?: Buffer,
): Promise<void> {
  const server = await startServe(root);
  const home = path.join(root, '..', `home-${randomBytes(4).toString('hex')}`);
  try {
    const updated = await update(server.url, home);
    if (symbols) {
      assert.equal(updated.symbols.status, 200, 'moon update gets the symbols from the imported registry');
      const served = await fetch(`${server.url}/symbols.zip`);
      assert.deepEqual(Buffer.from(await served.arrayBuffer()), symbols);
    }
    const index = await readIndexDir(path.join(home, 'registry', 'index'));
    const listed = new Map<string, string>();
    for (const [module, entries] of index.modules) {
      for (const [version, entry] of entries) {
        listed.set(`${module}@${version}`, entry.checksum ?? '');
        const bytes = await download(server.url, module, version, entry.checksum ?? '');
        assert.equal(sha256Hex(bytes), entry.checksum);
      }
    }
    assert.deepEqual(listed, expected);
    if (listed.has(`${APP}@1.0.0`)) {
      const installed = await install(server.url, home, { [APP]: '1.0.0' });
      assert.deepEqual([...installed.keys()].sort(), [APP, LIB]);
    }
  } finally {
    await server.stop();
    await fs.rm(home, { recursive: true, force: true });
  }
}
