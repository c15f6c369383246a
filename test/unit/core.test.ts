import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { archiveKeyEncoded, archiveUrl, parseArchivePath } from '../../src/core/archive-url.js';
import { normalizeChecksum, sha256Hex } from '../../src/core/checksum.js';
import { nestsDeeperThan } from '../../src/core/json-text.js';
import { indexPathForModule, isValidModuleName, moduleFromIndexPath } from '../../src/core/module-name.js';
import { selectForRequirement, selectMinimal } from '../../src/core/version.js';
import { parseIndexLine } from '../../src/index/index-file.js';

describe('module names', () => {
  test('accepts nested and non-ASCII names as found in the real index', () => {
    for (const name of [
      'moonbitlang/x',
      'tonyfettes/js/test',
      'illusory0x0/🐫',
      'CAIMEOX/原来可以发中文包',
      'a/readline.mbt',
    ]) {
      assert.equal(isValidModuleName(name), true, name);
    }
  });
  test('rejects anything that could escape a folder or is not owner/name', () => {
    for (const name of [
      'x',
      '../x',
      'a/..',
      'a/./b',
      'a/.git',
      'a//b',
      'a\\b/c',
      'a/b\u0000',
      '/a/b',
      'a/b/',
      'a/%2e',
      'a/b.index/c',
    ]) {
      assert.equal(isValidModuleName(name), false, name);
    }
  });
  test('maps index paths to modules and back', () => {
    assert.equal(moduleFromIndexPath('user/tonyfettes/js/test.index'), 'tonyfettes/js/test');
    assert.equal(indexPathForModule('tonyfettes/js/test'), 'user/tonyfettes/js/test.index');
    assert.equal(moduleFromIndexPath('stats.json'), undefined);
    assert.equal(moduleFromIndexPath('user/solo.index'), undefined);
    assert.equal(moduleFromIndexPath('user/../x.index'), undefined);
  });
});

describe('archive URLs', () => {
  test('encodes the key the way moon does', () => {
    assert.equal(archiveKeyEncoded('test/pkg', '1.2.3'), 'test%2Fpkg%2F1.2.3');
    assert.equal(
      archiveUrl('http://h:1/', 'moonbitlang/core', '0.1.20260213+3382e0600'),
      'http://h:1/user/moonbitlang%2Fcore%2F0.1.20260213%2B3382e0600.zip',
    );
  });
  test('parses both URL forms, nested and unicode names', () => {
    const plus = { module: 'moonbitlang/core', version: '0.1.20260213+3382e0600' };
    assert.deepEqual(parseArchivePath('moonbitlang%2Fcore%2F0.1.20260213%2B3382e0600.zip'), plus);
    assert.deepEqual(parseArchivePath('moonbitlang/core/0.1.20260213+3382e0600.zip'), plus);
    assert.deepEqual(parseArchivePath('tonyfettes%2fjs%2ftest%2F0.1.0.zip'), {
      module: 'tonyfettes/js/test',
      version: '0.1.0',
    });
    const camel = archiveKeyEncoded('illusory0x0/🐫', '0.1.0');
    assert.deepEqual(parseArchivePath(`${camel}.zip`), { module: 'illusory0x0/🐫', version: '0.1.0' });
  });
  test('refuses hostile paths', () => {
    for (const raw of [
      '..%2F..%2Fregistry.toml',
      '%2e%2e/%2e%2e/x/1.0.0.zip',
      '..%2F..%2Fx%2F1.0.0.zip',
      'a%2F..%2F1.0.0.zip',
      'a%5Cb%2Fc%2F1.0.0.zip',
      'a%2Fb%00%2F1.0.0.zip',
      'a%2Fb%2Fnot-a-version.zip',
      'a%2Fb%2F1.0.0',
      '%E0%A4%A.zip',
    ]) {
      assert.equal(parseArchivePath(raw), undefined, raw);
    }
  });
});

describe('checksums', () => {
  test('normalizes hex and rejects the rest', () => {
    const sum = sha256Hex('x');
    assert.equal(normalizeChecksum(sum.toUpperCase()), sum);
    assert.equal(normalizeChecksum('abc'), undefined);
    assert.equal(normalizeChecksum(42), undefined);
  });
});

describe('version selection (PROTOCOL.md 6)', () => {
  const available = [
    '0.1.0',
    '0.1.5',
    '0.2.0',
    '1.3.0',
    '2.0.0',
    '2.1.0',
    '3.0.0-alpha.1',
    '0.1.20260213+3382e0600',
  ];
  test('picks the smallest version at least the requirement, majors 0 and 1 sharing a set', () => {
    assert.equal(selectMinimal('0.1.1', available), '0.1.5');
    assert.equal(selectMinimal('0.3.0', available), '1.3.0');
    assert.equal(selectMinimal('1.4.0', available), undefined);
    assert.equal(selectMinimal('2.0.1', available), '2.1.0');
    assert.equal(selectMinimal('0.1.6', ['0.1.20260213+3382e0600', '0.2.0']), '0.1.20260213+3382e0600');
  });
  test('handles the odd requirements found in the wild', () => {
    assert.equal(selectForRequirement('*', available), '0.1.0');
    assert.equal(selectForRequirement('^2.0.0', available), '2.0.0');
    assert.equal(selectForRequirement('not a version', available), undefined);
  });
});

describe('nestsDeeperThan (serde_json stops at 128 levels)', () => {
  test('counts brackets outside strings only', () => {
    assert.equal(nestsDeeperThan('{"a":[1,{"b":2}]}', 3), false);
    assert.equal(nestsDeeperThan('{"a":[1,{"b":[]}]}', 3), true);
    assert.equal(nestsDeeperThan('{"a":"[[[[[[[["}', 1), false);
    assert.equal(nestsDeeperThan('{"a":"\\"[[[["}', 1), false, 'an escaped quote does not end the string');
    assert.equal(nestsDeeperThan('{"a":"\\\\", "b":[[]]}', 2), true, 'an escaped backslash does');
    assert.equal(nestsDeeperThan(`${'['.repeat(129)}${']'.repeat(129)}`, 128), true);
    assert.equal(nestsDeeperThan(`${'['.repeat(128)}${']'.repeat(128)}`, 128), false);
  });

  test('an index line nested deeper than moon reads is skipped with that reason', () => {
    const deep = `{"name":"a/b","version":"1.0.0","checksum":"${'0'.repeat(64)}","x":${'['.repeat(200)}${']'.repeat(200)}}`;
    assert.equal(parseIndexLine('a/b', deep), 'nests deeper than 128 levels');
  });
});
