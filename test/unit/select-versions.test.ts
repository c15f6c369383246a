import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RegistryError } from '../../src/core/errors.js';
import { type IndexEntry, parseIndexLine } from '../../src/index/index-file.js';
import { MergedCatalog } from '../../src/index/merged-catalog.js';
import type { SourceCatalog } from '../../src/index/source-catalog.js';
import { mergeSelections, selectVersions } from '../../src/registry/select-versions.js';

function catalog(
  source: string,
  lines: Array<[string, string, Record<string, string>?, string?]>,
): SourceCatalog {
  const modules = new Map<string, Map<string, IndexEntry>>();
  for (const [module, version, deps, sum] of lines) {
    const raw = JSON.stringify({
      name: module,
      version,
      checksum: (sum ?? 'a').repeat(64),
      deps: deps ?? {},
    });
    const entry = parseIndexLine(module, raw) as IndexEntry;
    if (!modules.has(module)) modules.set(module, new Map());
    modules.get(module)?.set(version, entry);
  }
  return { source, commit: 'c', modules };
}

const upstream = catalog('mooncakes', [
  ['moonbitlang/core', '0.1.0'],
  ['moonbitlang/core', '0.2.0'],
  ['moonbitlang/x', '0.4.0', { 'moonbitlang/core': '0.1.0' }],
  ['moonbitlang/x', '0.4.1', { 'moonbitlang/core': '0.1.5' }],
  ['moonbitlang/lex/runtime', '0.1.0', { 'moonbitlang/x': '0.4.0' }],
  ['tonyfettes/js/test', '0.1.0'],
  ['other/lib', '1.0.0', { 'missing/dep': '1.0.0' }],
]);

const keys = (s: ReturnType<typeof selectVersions>) => [...s.versions.keys()].sort();

test('globs match full names: * stays in one segment, ** crosses', () => {
  const merged = new MergedCatalog([upstream]);
  const one = selectVersions([upstream], merged, { patterns: ['moonbitlang/*'], full: false, strict: true });
  assert.deepEqual(keys(one), [
    'moonbitlang/core@0.1.0',
    'moonbitlang/core@0.2.0',
    'moonbitlang/x@0.4.0',
    'moonbitlang/x@0.4.1',
  ]);
  const nested = selectVersions([upstream], merged, {
    patterns: ['tonyfettes/js/*'],
    full: false,
    strict: true,
  });
  assert.deepEqual(keys(nested), ['tonyfettes/js/test@0.1.0']);
  const deep = selectVersions([upstream], merged, {
    patterns: ['moonbitlang/**'],
    full: false,
    strict: true,
  });
  assert.equal(deep.versions.size, 5);
});

test('dependencies get the version moon would pick, transitively', () => {
  const merged = new MergedCatalog([upstream]);
  const s = selectVersions([upstream], merged, {
    patterns: ['moonbitlang/lex/runtime'],
    full: false,
    strict: false,
  });
  // runtime -> x 0.4.0 -> core 0.1.0 (the smallest >= 0.1.0); core 0.1.5 needs 0.2.0 only via x 0.4.1, not picked
  assert.deepEqual(keys(s), [
    'moonbitlang/core@0.1.0',
    'moonbitlang/lex/runtime@0.1.0',
    'moonbitlang/x@0.4.0',
  ]);
  assert.equal(s.matched, 1);
  const x = selectVersions([upstream], merged, { patterns: ['moonbitlang/x'], full: false, strict: false });
  assert.deepEqual(keys(x), [
    'moonbitlang/core@0.1.0',
    'moonbitlang/core@0.2.0',
    'moonbitlang/x@0.4.0',
    'moonbitlang/x@0.4.1',
  ]);
});

test('a missing dependency is a warning; a pattern that matches nothing is an error', () => {
  const merged = new MergedCatalog([upstream]);
  const s = selectVersions([upstream], merged, { patterns: ['other/*'], full: false, strict: false });
  assert.match(s.warnings.join(), /other\/lib@1\.0\.0 depends on missing\/dep 1\.0\.0/);
  assert.throws(
    () => selectVersions([upstream], merged, { patterns: ['nobody/*'], full: false, strict: false }),
    (error: unknown) =>
      error instanceof RegistryError && /pattern "nobody\/\*" matches no module/.test(error.message),
  );
});

test('dependencies resolve across sources by priority; the higher source wins a shared version', () => {
  const internal = catalog('internal', [['company/app', '1.0.0', { 'moonbitlang/x': '0.4.1' }]]);
  const partner = catalog('partner', [['moonbitlang/x', '0.4.1', { 'moonbitlang/core': '0.2.0' }, 'b']]);
  const merged = new MergedCatalog([internal, partner, upstream]);
  assert.equal(merged.winner('moonbitlang/x', '0.4.1')?.source, 'partner');
  assert.equal(merged.sourcesWithChecksum('moonbitlang/x', '0.4.1', 'a'.repeat(64))[0]?.source, 'mooncakes');
  const s = selectVersions([internal], merged, { patterns: ['company/*'], full: false, strict: false });
  // partner's line wins for x 0.4.1, so its deps (core 0.2.0) are the ones followed
  assert.deepEqual(keys(s), ['company/app@1.0.0', 'moonbitlang/core@0.2.0', 'moonbitlang/x@0.4.1']);
});

test('merged selections: the union, pattern matches first, each version once', () => {
  const merged = new MergedCatalog([upstream]);
  const x = selectVersions([upstream], merged, { patterns: ['moonbitlang/x'], full: false, strict: false });
  const core = selectVersions([upstream], merged, {
    patterns: ['moonbitlang/core'],
    full: false,
    strict: true,
  });
  const both = mergeSelections([x, core]);
  assert.deepEqual(keys(both), [
    'moonbitlang/core@0.1.0',
    'moonbitlang/core@0.2.0',
    'moonbitlang/x@0.4.0',
    'moonbitlang/x@0.4.1',
  ]);
  // core@0.1.0 and 0.2.0 are x's dependencies but core's own matches: counted as matched.
  assert.equal(both.matched, 4);
  assert.deepEqual(mergeSelections([]), { versions: new Map(), matched: 0, warnings: [] });
});
