import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { describe, test } from 'node:test';
import yazl from 'yazl';
import { openBundleFile } from '../../src/transfer/bundle-file.js';
import { classifyEntry, parseManifest } from '../../src/transfer/bundle-manifest.js';
import { withImport } from '../../src/transfer/registry-identity.js';

const SUM = 'a'.repeat(64);
const COMMIT = 'c'.repeat(40);

function manifest(files: Array<{ path: string; sha256?: string; size?: number }>, extra: object = {}) {
  return JSON.stringify({
    format: 'moonbit-registry-bundle',
    version: 1,
    registry: { name: 'a', id: 'id-a' },
    created: '2026-01-01T00:00:00Z',
    index: { commit: COMMIT, prerequisite: null },
    files: files.map((f) => ({ sha256: SUM, size: 1, ...f })),
    ...extra,
  });
}

describe('bundle entries', () => {
  test('archives are <module>/<version>/<sha256>.zip, nested module names included', () => {
    assert.deepEqual(classifyEntry(`packages/owner/name/1.2.3/${SUM}.zip`), {
      kind: 'archive',
      module: 'owner/name',
      version: '1.2.3',
      checksum: SUM,
    });
    assert.equal(classifyEntry(`packages/owner/js/test/0.1.0/${SUM}.zip`)?.kind, 'archive');
    assert.equal(classifyEntry('index.bundle')?.kind, 'index');
    assert.deepEqual(classifyEntry('assets/owner/name/1.0.0/cmd/main/main.wasm'), {
      kind: 'asset',
      rel: 'owner/name/1.0.0/cmd/main/main.wasm',
    });
    assert.deepEqual(classifyEntry('symbols/mooncakes/symbols.zip'), {
      kind: 'symbols',
      rel: 'mooncakes/symbols.zip',
    });
  });

  test('paths that climb out, are absolute or are not ours are refused', () => {
    for (const path of [
      `packages/owner/name/1.0.0/${SUM.toUpperCase()}.zip`, // names are lowercase sha256
      `packages/owner/1.0.0/${SUM}.zip`, // module without a name
      `packages/owner/name/not-a-version/${SUM}.zip`,
      'packages/owner/name/1.0.0/abc.zip',
      'assets/../../etc/passwd',
      'assets/owner/name/1.0.0/../../../../x',
      'symbols/./x/y',
      '/symbols/up/symbols.zip',
      'symbols/up\\..\\x',
      'symbols/up/a\u0000b',
      'symbols/up/c:x',
      'symbols/only-one',
      'manifest.json',
      'other/file',
      '',
    ]) {
      assert.equal(classifyEntry(path), undefined, path);
    }
  });
});

describe('manifest', () => {
  test('a valid manifest parses', () => {
    const parsed = parseManifest(
      manifest([{ path: 'index.bundle' }, { path: `packages/o/n/1.0.0/${SUM}.zip` }]),
    );
    assert.equal(parsed.files.length, 2);
  });

  test('refused: not JSON, wrong format, no index, a path twice, an archive not named by its sha256', () => {
    const cases: Array<[string, RegExp]> = [
      ['{', /not JSON/],
      [manifest([{ path: 'index.bundle' }], { format: 'zip' }), /format/],
      [manifest([{ path: `packages/o/n/1.0.0/${SUM}.zip` }]), /no index\.bundle/],
      [manifest([{ path: 'index.bundle' }, { path: 'index.bundle' }]), /twice/],
      [
        manifest([
          { path: 'index.bundle' },
          { path: `packages/o/n/1.0.0/${SUM}.zip`, sha256: 'b'.repeat(64) },
        ]),
        /not named by its sha256/,
      ],
      [manifest([{ path: 'index.bundle' }, { path: 'assets/../x/y/z' }]), /no bundle may hold/],
      [manifest([{ path: 'index.bundle', size: -1 }]), /files/],
      [manifest([{ path: 'index.bundle' }], { index: { commit: 'HEAD', prerequisite: null } }), /commit/],
    ];
    for (const [text, message] of cases) assert.throws(() => parseManifest(text), message, text.slice(0, 80));
  });
});

/** Writes a bundle-shaped zip: index.bundle, one archive entry (deflated or not), the manifest. */
async function writeZip(file: string, archive: Buffer, compress: boolean): Promise<void> {
  const sum = createHash('sha256').update(archive).digest('hex');
  const index = Buffer.from('not read here');
  const zip = new yazl.ZipFile();
  zip.addBuffer(index, 'index.bundle', { compress: false });
  zip.addBuffer(archive, `packages/o/n/1.0.0/${sum}.zip`, { compress });
  const files = [
    { path: 'index.bundle', sha256: createHash('sha256').update(index).digest('hex'), size: index.length },
    { path: `packages/o/n/1.0.0/${sum}.zip`, sha256: sum, size: archive.length },
  ];
  zip.addBuffer(Buffer.from(manifest(files)), 'manifest.json', { compress: false });
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(file));
}

describe('bundle file', () => {
  test('a compressed entry is refused before anything is unpacked (a bomb declares its size honestly)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mbr-bundle-'));
    try {
      // 64 MiB of zeros deflate to ~64 KiB: sizes in the manifest and the zip agree.
      const zeros = Buffer.alloc(64 * 1024 * 1024);
      await writeZip(join(dir, 'bomb.zip'), zeros, true);
      await assert.rejects(openBundleFile(join(dir, 'bomb.zip')), /is compressed/);
      await writeZip(join(dir, 'plain.zip'), Buffer.from('an archive'), false);
      const bundle = await openBundleFile(join(dir, 'plain.zip'));
      assert.equal(bundle.manifest.files.length, 2);
      bundle.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('identity', () => {
  test('the first registry imported from keeps its place; a later import updates its record', () => {
    const identity = { version: 1 as const, id: 'me', created: 'x', imports: [] };
    const first = withImport(identity, { id: 'a', name: 'A', source: 'A', commit: '1', at: 't1' });
    const second = withImport(first, { id: 'b', name: 'B', source: 'B', commit: '2', at: 't2' });
    const again = withImport(second, { id: 'a', name: 'A', source: 'A', commit: '3', at: 't3' });
    assert.deepEqual(
      again.imports.map((r) => [r.id, r.commit]),
      [
        ['a', '3'],
        ['b', '2'],
      ],
    );
  });
});
