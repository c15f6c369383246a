import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { unzipSync } from 'fflate';
import { checkModuleArchive } from '../../src/hosted/module-archive.js';
import { packModule, writeModuleZip } from '../../src/hosted/pack-module.js';
import { tempDir } from '../support/cli.js';
import { git } from '../support/git.js';

const LIMITS = { maxBytes: 1 << 20, maxEntries: 100, maxUncompressed: 1 << 20 };

let scratch: { path: string; remove: () => Promise<void> };

async function writeModule(dir: string, manifest: Record<string, unknown>): Promise<void> {
  const files: Record<string, string> = {
    'moon.mod.json': JSON.stringify(manifest),
    'README.md': '# m\n',
    'src/lib.mbt': 'pub fn f() -> Int { 1 }\n',
    'src/lib_test.mbt': 'test { }\n',
    '_build/out.wasm': 'built',
    'target/old.wasm': 'built',
    '.mooncakes/dep/x.mbt': 'dep',
    'notes/private.txt': 'private',
  };
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
}

before(async () => {
  scratch = await tempDir('mr-pack-');
});

after(async () => {
  await scratch.remove();
});

describe('packModule', () => {
  test('packs like moon package: no build folders, honours include/exclude; the result passes the publish checks', async () => {
    const dir = path.join(scratch.path, 'plain');
    await writeModule(dir, { name: 'company/m', version: '1.0.0', exclude: ['notes/**', '**/*_test.mbt'] });
    const packed = await packModule(dir);
    assert.deepEqual(packed.files, ['README.md', 'moon.mod.json', 'src/lib.mbt']);
    const archive = await checkModuleArchive(packed.bytes, LIMITS);
    assert.equal(archive.module, 'company/m');
    const only = path.join(scratch.path, 'include');
    await writeModule(only, { name: 'company/m', version: '1.0.0', include: ['src/**'] });
    assert.deepEqual((await packModule(only)).files, ['moon.mod.json', 'src/lib.mbt', 'src/lib_test.mbt']);
  });

  test('git-ignored files stay out when the folder is a work tree', async () => {
    const dir = path.join(scratch.path, 'repo');
    await writeModule(dir, { name: 'company/m', version: '1.0.0' });
    await writeFile(path.join(dir, '.gitignore'), 'notes/\n');
    await git(['init', '-q', dir]);
    const { files } = await packModule(dir);
    assert.ok(!files.some((f) => f.startsWith('notes/')), files.join(', '));
    assert.ok(files.includes('.gitignore') && files.includes('src/lib.mbt'), files.join(', '));
  });

  test('deterministic: the same files give the same bytes whatever their times', async () => {
    const dir = path.join(scratch.path, 'times');
    await writeModule(dir, { name: 'company/m', version: '1.0.0' });
    const first = await packModule(dir);
    await utimes(path.join(dir, 'src', 'lib.mbt'), new Date(2001, 1, 1), new Date(2001, 1, 1));
    const second = await packModule(dir);
    assert.deepEqual(second.bytes, first.bytes);
  });
});

describe('writeModuleZip', () => {
  // The bytes every registry gives these files, pinned: a git source's checksums are these
  // bytes' hash, so two registries (another machine, Node.js, zlib) must agree, and so must
  // this registry before and after an upgrade. If this fails, packing changed: every git
  // source's versions would get new checksums. Make that an announced, deliberate change.
  const files = [
    { path: 'moon.mod.json', bytes: Buffer.from('{"name":"team/pinned","version":"1.0.0"}') },
    { path: 'src/lib.mbt', bytes: Buffer.from('pub fn answer() -> Int { 42 }\n'.repeat(200)) },
    { path: 'src/moon.pkg.json', bytes: Buffer.from('{}') },
  ];

  test('the same files give the same, pinned bytes on every machine', async () => {
    const bytes = await writeModuleZip(files);
    assert.equal(
      createHash('sha256').update(bytes).digest('hex'),
      '71f3399f8a7c507e19e267acbef3315c271b33b0b1d8914ebea58ff2e37c59a8',
      'writeModuleZip output changed',
    );
    const unpacked = unzipSync(bytes);
    assert.deepEqual(
      Object.keys(unpacked),
      files.map((f) => f.path),
      'in the order given',
    );
    for (const file of files) assert.deepEqual(Buffer.from(unpacked[file.path] as Uint8Array), file.bytes);
  });
});
