import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseIndexFile, renderIndexFile } from '../../src/index/index-file.js';

const sum = (c: string) => c.repeat(64);

test('reads leniently, last line for a version wins, raw lines kept byte for byte', () => {
  const lines = [
    `{"name": "a/b", "version": "0.1.0", "checksum": "${sum('1')}", "x-unknown": [1, {"k": null}]}`,
    'not json at all',
    `{"name": "other/module", "version": "0.2.0", "checksum": "${sum('2')}"}`,
    `{"name": "a/b", "version": "0.2.0", "checksum": "${sum('3')}", "deps": {"c/d": "0.1.0", "e/f": {"version": "1.0.0", "alias": "f"}, "g/h": {"path": "../h"}}}`,
    `{"name": "a/b", "version": "0.1.0", "checksum": "${sum('4')}"}`,
    `{"name": "a/b", "version": "bad", "checksum": "${sum('5')}"}`,
  ];
  const warnings: string[] = [];
  const entries = parseIndexFile('a/b', lines.join('\n'), (w) => warnings.push(w));
  assert.deepEqual([...entries.keys()], ['0.2.0', '0.1.0']);
  assert.equal(entries.get('0.1.0')?.checksum, sum('4'));
  assert.deepEqual(entries.get('0.2.0')?.deps, [
    { module: 'c/d', requirement: '0.1.0' },
    { module: 'e/f', requirement: '1.0.0' },
  ]);
  assert.equal(warnings.length, 3);
  assert.match(warnings.join('\n'), /line 2 skipped: not valid JSON/);
  assert.equal(renderIndexFile(entries.values()), `${lines[3]}\n${lines[4]}\n`);
});

test('a file without a final newline and with CRLF endings still parses', () => {
  const text = `{"name": "a/b", "version": "1.0.0", "checksum": "${sum('a')}"}\r\n{"name": "a/b", "version": "1.0.1", "checksum": "${sum('b')}"}`;
  const entries = parseIndexFile('a/b', text);
  assert.deepEqual([...entries.keys()], ['1.0.0', '1.0.1']);
});
