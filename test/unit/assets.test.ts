import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  type AssetRef,
  assetStoreSegments,
  assetUrlPath,
  parseAssetPath,
  parseSha256Text,
} from '../../src/core/asset-path.js';
import {
  dslIsMain,
  executablePackages,
  readExecutablePackages,
  sourceFolder,
} from '../../src/registry/executable-packages.js';
import { sourceAssetUrl } from '../../src/upstream/archive-location.js';
import { tempDir } from '../support/cli.js';
import { moduleZip } from '../support/module-zip.js';

describe('asset paths', () => {
  test('parses the package form, the root-package form and .sha256', () => {
    assert.deepEqual(parseAssetPath('owner/tool@1.0.0/cmd/fmt/fmt.wasm'), {
      module: 'owner/tool',
      version: '1.0.0',
      packagePath: ['cmd', 'fmt'],
      kind: 'wasm',
    });
    assert.deepEqual(parseAssetPath('owner/tool@1.0.0/tool.wasm.sha256'), {
      module: 'owner/tool',
      version: '1.0.0',
      packagePath: [],
      kind: 'sha256',
    });
    // Nested module names, build metadata (encoded or not).
    assert.deepEqual(parseAssetPath('t/js/test@0.1.0%2Bb1/test.wasm'), {
      module: 't/js/test',
      version: '0.1.0+b1',
      packagePath: [],
      kind: 'wasm',
    });
    assert.equal(parseAssetPath('t/js/test@0.1.0+b1/cli/cli.wasm')?.version, '0.1.0+b1');
  });

  test('refuses anything else', () => {
    for (const rest of [
      '',
      'owner/tool@1.0.0',
      'owner/tool@1.0.0/',
      'owner/tool@1.0.0/cmd/fmt/other.wasm',
      'owner/tool@1.0.0/cmd/fmt/fmt.wasm.sha256.x',
      'owner/tool@1.0.0/cmd/fmt/fmt.zip',
      'owner/tool@1.0.0/fmt.wasm', // the root package's file is tool.wasm
      'owner/tool@1.0.0/../tool.wasm',
      'owner/tool@1.0.0/cmd/%2e%2e/cmd.wasm',
      'owner/tool@1.0.0/cmd/%2E%2E%2F..%2F/x.wasm',
      'owner/tool@1.0.0/./tool.wasm',
      'owner/tool@1.0.0//tool.wasm',
      'owner/tool@1.0.0/a%5Cb/a%5Cb.wasm',
      'owner/tool@1.0.0/a\\b/a\\b.wasm',
      'owner/tool@1.0.0/a%00/a%00.wasm',
      'owner/tool@1.0.0/.git/.git.wasm',
      'owner/tool@1.0.0/x.wasm/x.wasm.wasm', // a folder where the root's file could be
      'owner/tool@1.0.x/tool.wasm',
      'owner/tool@/tool.wasm',
      'owner@1.0.0/owner.wasm',
      'owner/tool/1.0.0/tool.wasm',
      '../owner/tool@1.0.0/tool.wasm',
      'owner/tool@1.0.0/%ZZ/%ZZ.wasm',
      `owner/tool@1.0.0/${'a/'.repeat(40)}a.wasm`,
    ]) {
      assert.equal(parseAssetPath(rest), undefined, rest);
    }
  });

  test('URL and store paths round-trip through the parser', () => {
    const ref: AssetRef = { module: 'o/t', version: '1.0.0+b.1', packagePath: ['cmd', 'x'], kind: 'sha256' };
    assert.equal(assetUrlPath(ref), 'assets/o/t@1.0.0%2Bb.1/cmd/x/x.wasm.sha256');
    assert.deepEqual(parseAssetPath(assetUrlPath(ref).slice('assets/'.length)), ref);
    assert.deepEqual(assetStoreSegments(ref), ['o', 't', '1.0.0+b.1', 'cmd', 'x', 'x.wasm.sha256']);
  });

  test('a source serves assets under the host its archives come from', () => {
    const ref: AssetRef = { module: 'o/t', version: '1.0.0', packagePath: [], kind: 'wasm' };
    const source = (url: string, type: 'mooncakes' | 'registry' = 'registry') =>
      ({ name: 's', type, url, index_url: `${url}/git/index` }) as Parameters<typeof sourceAssetUrl>[0];
    assert.equal(
      sourceAssetUrl(source('https://mooncakes.io', 'mooncakes'), ref),
      'https://download.mooncakes.io/assets/o/t@1.0.0/t.wasm',
    );
    assert.equal(sourceAssetUrl(source('http://h:1/reg/'), ref), 'http://h:1/reg/assets/o/t@1.0.0/t.wasm');
  });

  test('.sha256 text: sha256sum format, the file must be this one', () => {
    const hex = 'ab'.repeat(32);
    assert.equal(parseSha256Text(`${hex}  tool.wasm\n`, 'tool.wasm'), hex);
    assert.equal(parseSha256Text(`${hex.toUpperCase()} *dir/tool.wasm`, 'tool.wasm'), hex);
    assert.equal(parseSha256Text(hex, 'tool.wasm'), hex);
    assert.equal(parseSha256Text(`${hex}  other.wasm`, 'tool.wasm'), undefined);
    assert.equal(parseSha256Text(`${hex.slice(2)}  tool.wasm`, 'tool.wasm'), undefined);
    assert.equal(parseSha256Text(`${hex}  tool.wasm\n${hex}  x.wasm\n`, 'tool.wasm'), undefined);
    assert.equal(parseSha256Text('<html>not found</html>', 'tool.wasm'), undefined);
  });
});

describe('executable package discovery', () => {
  const files = (entries: Record<string, string>) => new Map(Object.entries(entries));

  test('moon.pkg.json with is-main, paths relative to the module root', () => {
    assert.deepEqual(
      executablePackages(
        files({
          'moon.mod.json': '{"name":"o/t","version":"1.0.0"}',
          'moon.pkg.json': '{"is-main": true}',
          'cmd/a/moon.pkg.json': '{"is-main": true, "import": ["o/t"]}',
          'lib/moon.pkg.json': '{}',
          'off/moon.pkg.json': '{"is-main": false}',
          'broken/moon.pkg.json': '{"is-main": tru',
        }),
      ),
      [[], ['cmd', 'a']],
    );
  });

  test('the source folder is the root; packages outside it and build folders do not count', () => {
    assert.deepEqual(
      executablePackages(
        files({
          'moon.mod.json': '{"name":"o/t","version":"1.0.0","source":"./src/"}',
          'src/moon.pkg.json': '{"is-main": true}',
          'src/tools/gen/moon.pkg.json': '{"is-main": true}',
          'examples/moon.pkg.json': '{"is-main": true}',
          'src/_build/x/moon.pkg.json': '{"is-main": true}',
          'src/.mooncakes/y/moon.pkg.json': '{"is-main": true}',
        }),
      ),
      [[], ['tools', 'gen']],
    );
    assert.deepEqual(sourceFolder('{"source":"a/b"}'), ['a', 'b']);
    assert.deepEqual(sourceFolder('{"source":"."}'), []);
    assert.deepEqual(sourceFolder('{"source":7}'), []);
    assert.deepEqual(sourceFolder('not json'), []);
  });

  test('the moon.pkg DSL: options("is-main": true), comments and strings ignored', () => {
    assert.equal(dslIsMain('options(\n  "is-main": true,\n)\n'), true);
    assert.equal(
      dslIsMain('import {\n  "a/b",\n}\n\noptions(\n  overrides: [ "x" ],\n  "is-main": true,\n)'),
      true,
    );
    assert.equal(dslIsMain('options(is_main: true)'), true);
    assert.equal(dslIsMain('options(\n  "is-main": false,\n)'), false);
    assert.equal(dslIsMain('// options("is-main": true)\noptions(\n  "is-main": false,\n)'), false);
    assert.equal(dslIsMain('/* options("is-main": true) */'), false);
    assert.equal(dslIsMain('import {\n  "options(\\"is-main\\": true)",\n}'), false);
    assert.equal(dslIsMain('"is-main": true'), false, 'only inside options(...)');
    assert.equal(dslIsMain('options(link: { wasm: { exports: ["is-main: true"] } })'), false);
  });

  const scratch = tempDir('mr-assets-unit-');
  after(async () => (await scratch).remove());

  test('reads the descriptors out of a real zip', async () => {
    const zip = moduleZip(
      { name: 'o/t', version: '1.0.0', source: 'src' },
      {
        'src/moon.pkg.json': '{}',
        'src/cli/moon.pkg': 'options(\n  "is-main": true,\n)\n',
        'src/cli/main.mbt': 'fn main { }\n',
      },
    );
    const file = path.join((await scratch).path, 'm.zip');
    await writeFile(file, zip);
    assert.deepEqual(await readExecutablePackages(file), [['cli']]);
  });
});
