import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PRESETS } from '../../src/config/presets.js';
import { SourceSchema } from '../../src/config/schema.js';
import { sourceSymbolsUrl } from '../../src/upstream/archive-location.js';

const source = (fields: Record<string, unknown>) => SourceSchema.parse({ name: 's', ...fields });

test('symbols.zip URL: download.mooncakes.io for the preset, URL/symbols.zip otherwise, symbols_url wins', () => {
  assert.equal(
    sourceSymbolsUrl(source({ ...PRESETS.mooncakes })),
    'https://download.mooncakes.io/symbols.zip',
  );
  const own = { url: 'https://registry.example.com/', index_url: 'https://registry.example.com/git/index' };
  assert.equal(sourceSymbolsUrl(source(own)), 'https://registry.example.com/symbols.zip');
  // A mirror of mooncakes.io at another host keeps its symbols beside its archives.
  assert.equal(
    sourceSymbolsUrl(source({ ...own, type: 'mooncakes' })),
    'https://registry.example.com/symbols.zip',
  );
  assert.equal(
    sourceSymbolsUrl(source({ ...PRESETS.mooncakes, symbols_url: 'https://cdn.example.com/s.zip' })),
    'https://cdn.example.com/s.zip',
  );
  assert.throws(() => source({ ...own, symbols_url: 'ftp://x/symbols.zip' }), /http\(s\) URL/);
});
