import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigSchema } from '../../src/config/schema.js';
import { parseIndexLine } from '../../src/index/index-file.js';
import type { SourceCatalog } from '../../src/index/source-catalog.js';
import { type ShadowAttempt, SourcePolicy } from '../../src/registry/source-policy.js';

const SUM = (n: number) => String(n).repeat(64).slice(0, 64);

function catalog(source: string, lines: Array<[string, string, number]>): SourceCatalog {
  const modules: SourceCatalog['modules'] = new Map();
  for (const [module, version, sum] of lines) {
    const entry = parseIndexLine(module, JSON.stringify({ name: module, version, checksum: SUM(sum) }));
    assert.ok(typeof entry !== 'string', String(entry));
    const versions = modules.get(module) ?? new Map();
    versions.set(version, entry);
    modules.set(module, versions);
  }
  return { source, commit: 'c'.repeat(40), modules };
}

function config(extra: Record<string, unknown>) {
  return ConfigSchema.parse({
    sources: [
      {
        name: 'public',
        url: 'https://public.example',
        index_url: 'https://public.example/git/index',
        priority: 100,
      },
      {
        name: 'partner',
        url: 'https://partner.example',
        index_url: 'https://partner.example/git/index',
        priority: 50,
        include: ['partner-org/*'],
        exclude: ['partner-org/secret'],
      },
    ],
    ...extra,
  });
}

describe('SourcePolicy', () => {
  test('the hosted source wins by its priority; upstreams keep their order', () => {
    const policy = new SourcePolicy(config({}));
    const merged = policy.merge([
      catalog('public', [['moonbitlang/x', '1.0.0', 1]]),
      catalog('local', [['moonbitlang/x', '1.0.0', 2]]),
      catalog('partner', [['partner-org/lib', '1.0.0', 3]]),
    ]);
    assert.deepEqual(
      merged.candidates('moonbitlang/x', '1.0.0').map((c) => c.source),
      ['local', 'public'],
    );
    assert.deepEqual(
      merged.catalogs.map((c) => c.source),
      ['local', 'partner', 'public'],
    );
  });

  test('a hosted priority below an upstream lets that upstream win', () => {
    const policy = new SourcePolicy(config({ hosted: { priority: 200 } }));
    const merged = policy.merge([
      catalog('local', [['moonbitlang/x', '1.0.0', 2]]),
      catalog('public', [['moonbitlang/x', '1.0.0', 1]]),
    ]);
    assert.equal(merged.winner('moonbitlang/x', '1.0.0')?.source, 'public');
  });

  test("a source's include and exclude limit what it may provide", () => {
    const merged = new SourcePolicy(config({})).merge([
      catalog('partner', [
        ['partner-org/lib', '1.0.0', 1],
        ['partner-org/secret', '1.0.0', 2],
        ['moonbitlang/x', '9.9.9', 3],
      ]),
    ]);
    assert.deepEqual([...merged.modules()], ['partner-org/lib']);
  });

  test('[hosted] exclusive: no upstream entry for those modules, each one reported; published ones stay', () => {
    const seen: ShadowAttempt[] = [];
    const merged = new SourcePolicy(config({ hosted: { exclusive: ['company/**'] } })).merge(
      [
        catalog('public', [
          ['company/app', '9.9.9', 1],
          ['company/deep/lib', '1.0.0', 2],
          ['moonbitlang/x', '1.0.0', 3],
        ]),
        catalog('local', [['company/app', '1.0.0', 4]]),
      ],
      (attempt) => seen.push(attempt),
    );
    assert.deepEqual(merged.versions('company/app'), ['1.0.0']);
    assert.equal(merged.winner('company/app', '1.0.0')?.source, 'local');
    assert.deepEqual(merged.versions('company/deep/lib'), []);
    assert.deepEqual(merged.versions('moonbitlang/x'), ['1.0.0']);
    assert.deepEqual(seen, [
      { source: 'public', module: 'company/app' },
      { source: 'public', module: 'company/deep/lib' },
    ]);
  });

  test('the hosted name may not be a source name, and globs are checked', () => {
    assert.throws(() => config({ hosted: { name: 'public' } }), /also a \[\[sources\]\] name/);
    assert.throws(() => config({ hosted: { exclusive: ['company'] } }), /module glob/);
  });
});
