import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { addSource, removeSource, setSourceEnabled } from '../../src/config/source-edits.js';
import { loadConfigFile, parseConfigText, updateConfigFile } from '../../src/config/toml-file.js';
import { RegistryError } from '../../src/core/errors.js';
import { authorizationHeader, redact } from '../../src/upstream/credentials.js';

const handWritten = `# our registry, edited by hand
default_source = "mooncakes"

[server]
port = 9000 # the team's port

# public packages
[[sources]]
name = "mooncakes"
type = "mooncakes"
url = "https://mooncakes.io"
index_url = "https://mooncakes.io/git/index"
priority = 100

[[sources]]
name = "partner"
url = "https://partner.example.com/registry"
index_url = "https://partner.example.com/registry/git/index"
priority = 50
[sources.auth]
type = "bearer"
token = "\${PARTNER_TOKEN}"
`;

test('loads a hand-written file with defaults filled in', () => {
  const { config } = parseConfigText('registry.toml', handWritten);
  assert.equal(config.server.port, 9000);
  assert.equal(config.server.host, '127.0.0.1');
  assert.equal(config.mirror.concurrency, 16);
  assert.equal(config.sources[1]?.type, 'custom');
  assert.equal(config.sources[1]?.enabled, true);
  assert.deepEqual(config.sources[1]?.auth, { type: 'bearer', token: '${PARTNER_TOKEN}' });
});

function configError(text: string): string {
  try {
    parseConfigText('registry.toml', text);
  } catch (error) {
    assert.ok(error instanceof RegistryError);
    return error.message;
  }
  assert.fail('expected a config error');
}

test('a TOML syntax error names the line', () => {
  assert.match(configError('[server]\nport = = 3\n'), /registry\.toml: invalid TOML at line 2/);
});

test('a schema error names the key and its line', () => {
  const text = handWritten.replace('priority = 50', 'priority = "high"');
  assert.match(configError(text), /line 19: sources\[1\]\.priority: .*number/);
  assert.match(configError('[server]\nport = 99999\n'), /line 2: server\.port/);
  assert.match(configError('default_source = "nope"\n'), /default_source: names no configured source/);
  assert.match(
    configError('[[sources]]\nname = "a"\nurl = "ftp://x"\nindex_url = "http://x"\n'),
    /line 3: sources\[0\]\.url/,
  );
  assert.match(configError('[servr]\nport = 1\n'), /servr/);
});

test('edits keep the user comments and touch only changed keys', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mr-config-'));
  try {
    const path = join(dir, 'registry.toml');
    await writeFile(path, handWritten);
    const file = await loadConfigFile(path);
    const { changed } = await updateConfigFile(file, (raw) => {
      addSource(raw, { name: 'internal', url: 'https://internal.company.com/moonbit', priority: 25 });
      setSourceEnabled(raw, 'partner', false);
    });
    assert.equal(changed, true);
    const text = await readFile(path, 'utf8');
    for (const kept of [
      '# our registry, edited by hand',
      "port = 9000 # the team's port",
      '# public packages',
      'token = "${PARTNER_TOKEN}"',
    ]) {
      assert.ok(text.includes(kept), `kept: ${kept}`);
    }
    const reloaded = await loadConfigFile(path);
    assert.deepEqual(
      reloaded.config.sources.map((s) => [s.name, s.enabled, s.priority]),
      [
        ['mooncakes', true, 100],
        ['partner', false, 50],
        ['internal', true, 25],
      ],
    );
    assert.equal(reloaded.config.sources[2]?.index_url, 'https://internal.company.com/moonbit/git/index');
    const noop = await updateConfigFile(reloaded, (raw) => setSourceEnabled(raw, 'partner', false));
    assert.equal(noop.changed, false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('source rules: duplicates, unknown names, removing the default', () => {
  const raw = parseConfigText('r.toml', handWritten).raw;
  assert.throws(() => addSource(raw, { name: 'partner', url: 'https://x' }), /already exists/);
  assert.throws(() => addSource(raw, { name: 'x y', url: 'https://x' }), /invalid source name/);
  assert.throws(
    () => setSourceEnabled(raw, 'ghost', true),
    /unknown source "ghost" \(configured: mooncakes, partner\)/,
  );
  assert.throws(() => removeSource(raw, 'mooncakes'), /default source/);
  assert.match(addSource(raw, { name: 'mooncakes', preset: 'mooncakes' }), /nothing changed/);
  assert.match(addSource(raw, { name: 'late', url: 'https://late.example' }), /priority 110/);
});

test('credentials come from the environment and are redacted', () => {
  process.env.MR_TEST_TOKEN = 's3cr3t-token';
  try {
    const header = authorizationHeader({ type: 'bearer', token: '${MR_TEST_TOKEN}' }, 'partner');
    assert.equal(header, 'Bearer s3cr3t-token');
    assert.equal(
      redact('failed with Bearer s3cr3t-token at http://u:p@h/x', ['s3cr3t-token']),
      'failed with Bearer *** at http://***@h/x',
    );
    const basic = authorizationHeader(
      { type: 'basic', username: 'me', password: '${MR_TEST_TOKEN}' },
      'internal',
    );
    assert.equal(basic, `Basic ${Buffer.from('me:s3cr3t-token').toString('base64')}`);
  } finally {
    delete process.env.MR_TEST_TOKEN;
  }
  assert.throws(
    () => authorizationHeader({ type: 'bearer', token: '${MR_MISSING_VAR}' }, 'partner'),
    /source "partner": environment variable MR_MISSING_VAR is not set/,
  );
});

test('removing any source keeps the other sources, their [sources.auth] tables and comments', async () => {
  const text = `default_source = "a"

[[sources]]
name = "a"
url = "http://a.example"
index_url = "http://a.example/git/index"

# the partner, with a token
[[sources]]
name = "p"
url = "http://p.example"
index_url = "http://p.example/git/index"
[sources.auth]
type = "bearer"
token = "\${T}"

# last one
[[sources]]
name = "t"
url = "http://t.example"
index_url = "http://t.example/git/index"
[sources.auth]
type = "basic"
username = "u"
password = "\${P}"
`;
  const dir = await mkdtemp(join(tmpdir(), 'mr-config-'));
  try {
    const path = join(dir, 'registry.toml');
    for (const [name, survivors] of [
      ['t', ['a', 'p']],
      ['p', ['a', 't']],
    ] as const) {
      await writeFile(path, text);
      await updateConfigFile(await loadConfigFile(path), (raw) => removeSource(raw, name));
      const after = await readFile(path, 'utf8');
      const { config } = await loadConfigFile(path);
      assert.deepEqual(
        config.sources.map((s) => s.name),
        survivors,
      );
      assert.deepEqual(
        config.sources.find((s) => s.name === 'p')?.auth ?? config.sources[1]?.auth,
        name === 'p' ? { type: 'basic', username: 'u', password: '${P}' } : { type: 'bearer', token: '${T}' },
      );
      assert.equal(
        after.includes('# the partner, with a token'),
        name !== 'p',
        'the removed source takes its comment along',
      );
      assert.equal(after.includes('# last one'), name !== 't');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
