import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as TOML from '@decimalturn/toml-patch';
import { migrateConfig } from '../../src/config/migrate-config.js';
import type { SourceConfig } from '../../src/config/schema.js';
import { addSource, removeSource, setSourceEnabled } from '../../src/config/source-edits.js';
import { loadConfigFile, parseConfigText, updateConfigFile } from '../../src/config/toml-file.js';
import { RegistryError } from '../../src/core/errors.js';
import { sourceArchiveUrl } from '../../src/upstream/archive-location.js';
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
  assert.equal(config.mirror.concurrency, 32);
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

test("moonbit-registry-tools' keys load: [upstream] becomes a source, with notices", () => {
  const text = `[registry]
name = "old"
data_dir = "./data"

[upstream]
enabled = true
url = "https://mooncakes.io"
index_url = "https://mooncakes.io/git/index"

[mirror]
packages = ["moonbitlang/*"]

[server]
[server.smart_http]
enabled = false

[git]
remote_url = ""
branch = "main"
auto_push = true
`;
  const { config, notices } = parseConfigText('registry.toml', text);
  assert.equal(config.default_source, 'mooncakes');
  assert.deepEqual(
    config.sources.map((s) => [s.name, s.type, s.priority, s.enabled]),
    [['mooncakes', 'mooncakes', 100, true]],
  );
  assert.deepEqual(config.mirror.packages, ['moonbitlang/*']);
  assert.equal(config.registry.data_dir, './data');
  assert.equal(notices.length, 3);
  assert.match(
    notices[0] ?? '',
    /line 5: \[upstream\].*source "mooncakes", priority 100, the default source/,
  );
  assert.match(notices[1] ?? '', /line 14: \[server\.smart_http\] is ignored/);
  assert.match(notices[2] ?? '', /line 20: \[git\] auto_push is on but remote_url is empty/);

  // Another registry's URL: a custom source named "upstream"; a [[sources]] of that name wins.
  const other = text.replaceAll('https://mooncakes.io', 'https://registry.example.com');
  assert.equal(parseConfigText('r', other).config.sources[0]?.name, 'upstream');
  const both = `${other}\n[[sources]]\nname = "upstream"\nurl = "https://x.example"\nindex_url = "https://x.example/git/index"\n`;
  const parsed = parseConfigText('r', both);
  assert.deepEqual(
    parsed.config.sources.map((s) => s.url),
    ['https://x.example'],
  );
  assert.match(parsed.notices[0] ?? '', /\[upstream\] is ignored/);
});

test('an unknown key gets a "did you mean" when one is close, in any table', () => {
  assert.match(configError('[server]\nprot = 1\n'), /line 2: server\.prot: .*did you mean "port"\?/);
  assert.match(configError('[mirror]\npackage = []\n'), /did you mean "packages"\?/);
  assert.match(
    configError('[[sources]]\nname = "a"\nurl = "http://x"\nindex_url = "http://x"\nprioriti = 1\n'),
    /line 5: sources\[0\]\.prioriti: .*did you mean "priority"\?/,
  );
  assert.match(configError('[servr]\n'), /did you mean "server"\?/);
  assert.doesNotMatch(configError('[server]\ncompletely_unrelated = 1\n'), /did you mean/);
});

test('[git] checks its URL and branch; secrets belong in [git.auth]', () => {
  assert.match(
    configError('[git]\nremote_url = "https://u:secret@h/x.git"\n'),
    /git\.remote_url: must not contain a password/,
  );
  assert.match(configError('[git]\nbranch = "a..b"\n'), /git\.branch: must be a git branch name/);
  assert.match(configError('[git]\nremote_url = "--upload-pack=evil"\n'), /must be a git URL or path/);
  const { config } = parseConfigText(
    'r',
    '[git]\nremote_url = "git@example.com:team/index.git"\n[git.auth]\ntype = "bearer"\ntoken = "${T}"\n',
  );
  assert.equal(config.git.branch, 'main');
  assert.deepEqual(config.git.auth, { type: 'bearer', token: '${T}' });
});

test('package_url_pattern: ${...} and {...} placeholders, {username} and {name}', () => {
  const source = (pattern: string) =>
    parseConfigText(
      'r',
      `[[sources]]\nname = "s"\nurl = "https://s.example/r/"\nindex_url = "https://s.example/r/git/index"\npackage_url_pattern = "${pattern}"\n`,
    ).config.sources[0] as SourceConfig;
  const old = source('${url}/user/${username}/${name}/${version}.zip');
  assert.equal(
    sourceArchiveUrl(old, 'tonyfettes/js/test', '1.0.0+b'),
    'https://s.example/r/user/tonyfettes/js/test/1.0.0%2Bb.zip',
  );
  const mixed = source('https://cdn.example/{username}/${name}@{version}');
  assert.equal(sourceArchiveUrl(mixed, 'a/b', '2.0.0'), 'https://cdn.example/a/b@2.0.0');
  assert.match(
    configError(
      `[[sources]]\nname = "s"\nurl = "https://s"\nindex_url = "https://s/g"\npackage_url_pattern = "{url}/{name}/{version}"\n`,
    ),
    /package_url_pattern: must start with/,
  );
});

test('config migrate: [upstream] becomes [[sources]] in the text, comments and other keys kept', () => {
  const text = `# my registry
[registry]
name = "old"

[upstream]  # legacy
enabled = true
url = "https://registry.example.com"

[server]
port = 9000 # ours
[server.smart_http]
enabled = true
`;
  const raw = TOML.parse(text) as Record<string, unknown>;
  const changes = migrateConfig(raw);
  assert.equal(changes.length, 3);
  const { config } = parseConfigText('r', TOML.stringify(raw));
  assert.deepEqual(
    config.sources.map((s) => [s.name, s.index_url]),
    [['upstream', 'https://registry.example.com/git/index']],
  );
  assert.equal(config.default_source, 'upstream');
  assert.deepEqual(migrateConfig(raw), [], 'a second migration changes nothing');
});

test('updateConfigFile can start the first [[sources]] of a file that has none', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mr-config-'));
  try {
    const path = join(dir, 'registry.toml');
    await writeFile(path, '# empty but for this\n[server]\nport = 1 # keep\n');
    await updateConfigFile(await loadConfigFile(path), (raw) =>
      addSource(raw, { name: 'first', url: 'https://first.example' }),
    );
    const text = await readFile(path, 'utf8');
    assert.match(text, /port = 1 # keep/);
    assert.equal((await loadConfigFile(path)).config.sources[0]?.name, 'first');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('default_source written after the [[sources]] (as moonbit-registry-tools does) is read as the top-level key', async () => {
  const text = `[registry]
name = "old"

[[sources]]
name = "mooncakes"
url = "https://mooncakes.io"
index_url = "https://mooncakes.io/git/index"

[[sources]]
name = "company"
url = "https://company.example"
index_url = "https://company.example/git/index"
[sources.auth]
type = "bearer"
token = "\${T}"
default_source = "company"

[mirror]
packages = []
`;
  const parsed = parseConfigText('registry.toml', text);
  assert.equal(parsed.config.default_source, 'company');
  assert.deepEqual(parsed.config.sources[1]?.auth, { type: 'bearer', token: '${T}' });
  assert.match(parsed.notices[0] ?? '', /line 16: default_source is written after the \[\[sources\]\]/);
  const dir = await mkdtemp(join(tmpdir(), 'mr-config-'));
  try {
    const path = join(dir, 'registry.toml');
    await writeFile(path, text.replaceAll('\n', '\r\n'));
    const { result } = await updateConfigFile(await loadConfigFile(path), migrateConfig);
    assert.match(result[0] ?? '', /default_source = "company" moved out of the last \[\[sources\]\]/);
    const after = await readFile(path, 'utf8');
    assert.ok(
      !/\r?\n(?<!\r)\n/.test(after.replace(/\r\n/g, '')) && !/[^\r]\n/.test(after),
      'CRLF kept throughout',
    );
    const reloaded = await loadConfigFile(path);
    assert.equal(reloaded.config.default_source, 'company');
    assert.deepEqual(reloaded.notices, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('config migrate keeps the comment above the table after [upstream]', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mr-config-'));
  try {
    const path = join(dir, 'registry.toml');
    await writeFile(
      path,
      '[upstream]\nurl = "https://old.example.com"\n\n# ---- Server settings: keep port 8080 ----\n[server]\nport = 8080\n',
    );
    await updateConfigFile(await loadConfigFile(path), migrateConfig);
    const after = await readFile(path, 'utf8');
    assert.match(after, /# ---- Server settings: keep port 8080 ----\n\[server\]/);
    const { config } = await loadConfigFile(path);
    assert.equal(config.sources[0]?.package_url_pattern, '{url}/user/{username}/{name}/{version}.zip');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
