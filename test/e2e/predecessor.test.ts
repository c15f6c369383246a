/**
 * Coming from moonbit-registry-tools (issue 13): its registry.toml loads as it is, its data
 * folder is taken over without downloading again what a source vouches for, `[mirror]
 * packages` is what `mirror` mirrors without patterns, and `config migrate` rewrites the file.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli, runCliOk, startServe, tempDir } from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, type Fixture } from '../support/fixture.js';
import { git } from '../support/git.js';
import { predecessorToml as predecessorFile } from '../support/predecessor-toml.js';

const APP = 'acme/app';
const LIB = 'acme/lib';
const OTHER = 'other/tool';

/** The predecessor's file with every key it writes, pointed at the fake upstream. */
function predecessorToml(url: string, extra = ''): string {
  return predecessorFile(url, { packages: [APP], extra });
}

async function servedFiles(root: string, dataDir = 'data'): Promise<string[]> {
  const gitDir = path.join(root, dataDir, 'index');
  const out = await git(['--git-dir', gitDir, 'ls-tree', '-r', '--name-only', 'refs/heads/main']);
  return out.split('\n').filter(Boolean).sort();
}

describe('coming from moonbit-registry-tools', () => {
  let fixture: Fixture;
  let upstream: FakeUpstream;
  let work: { path: string; remove: () => Promise<void> };
  let n = 0;
  const newRoot = async (toml: string) => {
    const root = path.join(work.path, `registry-${++n}`);
    await fs.mkdir(root, { recursive: true });
    await fs.writeFile(path.join(root, 'registry.toml'), toml);
    return root;
  };

  before(async () => {
    fixture = await buildFixture({
      filter: () => false,
      extraModules: [
        { module: LIB, version: '1.0.0' },
        { module: APP, version: '1.0.0', deps: { [LIB]: '1.0.0' } },
        { module: OTHER, version: '2.0.0' },
      ],
    });
    upstream = await FakeUpstream.start({ fixture });
    work = await tempDir('mr-predecessor-');
  });
  after(async () => {
    await upstream?.close();
    await fixture?.cleanup();
    await work?.remove();
  });

  test('its registry.toml works as it is: [upstream] is a source, [mirror] packages are mirrored', async () => {
    const root = await newRoot(predecessorToml(upstream.url));
    const init = await runCli(['init'], { cwd: root });
    assert.notEqual(init.code, 0);
    assert.match(init.stderr, /already exists/);

    const mirrored = await runCliOk(['mirror', '--json'], { cwd: root });
    assert.match(
      mirrored.stderr,
      /\[upstream\].*used as source "upstream", priority 100, the default source/,
    );
    assert.match(mirrored.stderr, /config migrate/);
    assert.match(mirrored.stderr, /\[server\.smart_http\] is ignored/);
    assert.match(mirrored.stderr, /created the data folder/);
    // The configured package and its dependency, nothing else.
    assert.deepEqual(await servedFiles(root), ['user/acme/app.index', 'user/acme/lib.index']);

    const sources = await runCliOk(['source', 'list'], { cwd: root });
    assert.match(sources.stdout, /upstream \(default\)/);
    // Notices are said again on each command, but the data folder is made once.
    assert.doesNotMatch(sources.stderr, /created the data folder/);
  });

  test('a mirror-mode sync keeps [mirror] packages current without any mirror run', async () => {
    const toml = predecessorToml(upstream.url)
      .replace('auto_sync = false', 'auto_sync = true')
      .replace('base_url = "http://localhost:8080"', 'admin_token = "${ADMIN}"');
    const root = await newRoot(toml);
    const server = await startServe(root, [], { env: { ADMIN: 'admin-secret' } });
    try {
      const res = await fetch(`${server.url}/admin/sync`, {
        method: 'POST',
        headers: { Authorization: 'Bearer admin-secret' },
      });
      assert.equal(res.status, 200, await res.text());
      assert.deepEqual(await servedFiles(root), ['user/acme/app.index', 'user/acme/lib.index']);
    } finally {
      await server.stop();
    }
  });

  test('data_dir is honoured, relative to the registry folder', async () => {
    const root = await newRoot(
      predecessorToml(upstream.url).replace('data_dir = "./data"', 'data_dir = "store/v1"'),
    );
    await runCliOk(['mirror', OTHER], { cwd: root });
    assert.deepEqual(await servedFiles(root, 'store/v1'), ['user/other/tool.index']);
    assert.equal(existsSync(path.join(root, 'data')), false);
  });

  test('its data folder is taken over: vouched-for archives not downloaded again, its index never served', async () => {
    const root = await newRoot(predecessorToml(upstream.url));
    const data = path.join(root, 'data');
    // The predecessor's index: a work tree with one commit, as its `init` and a publish made it.
    const oldIndex = path.join(data, 'index');
    await fs.mkdir(path.join(oldIndex, 'acme'), { recursive: true });
    await git(['init', '-q', '-b', 'main', oldIndex]);
    await fs.writeFile(path.join(oldIndex, 'acme', 'app'), '{"name":"acme/app","version":"0.9.0"}\n');
    // Whatever else such a repository holds must not reach clients.
    await fs.writeFile(path.join(oldIndex, 'secrets.env'), 'TOKEN=do-not-serve\n');
    await git(['-C', oldIndex, 'add', '.']);
    await git(['-C', oldIndex, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'old']);
    const oldHead = (await git(['-C', oldIndex, 'rev-parse', 'HEAD'])).trim();
    // Its archives: one with the upstream's bytes, one it does not vouch for.
    const put = async (module: string, version: string, bytes: Buffer) => {
      const file = path.join(data, 'packages', ...module.split('/'), `${version}.zip`);
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.writeFile(file, bytes);
    };
    await put(APP, '1.0.0', fixture.archiveFor(APP, '1.0.0') as Buffer);
    await put(LIB, '1.0.0', Buffer.from('not the archive the index describes'));

    const before = new Map(upstream.archiveHits);
    const result = await runCliOk(['mirror', '--json'], { cwd: root });
    assert.match(result.stderr, /took over moonbit-registry-tools' data folder/);
    assert.match(
      result.stderr,
      /1 moonbit-registry-tools archive\(s\) match no source's checksum.*acme\/lib@1\.0\.0/,
    );
    const hits = (key: string) => (upstream.archiveHits.get(key) ?? 0) - (before.get(key) ?? 0);
    assert.equal(hits(`${APP}@1.0.0`), 0, 'the vouched-for archive was downloaded again');
    assert.equal(hits(`${LIB}@1.0.0`), 1);
    assert.deepEqual(await servedFiles(root), ['user/acme/app.index', 'user/acme/lib.index']);
    // The old index is kept aside, never served: none of its commits is in the served index.
    await assert.rejects(
      git(['--git-dir', path.join(data, 'index'), 'cat-file', '-e', `${oldHead}^{commit}`]),
    );
    assert.ok(existsSync(path.join(data, 'legacy', 'index', '.git')));
    // The unmatched archive stays, and is not reported again while nothing changes.
    assert.ok(existsSync(path.join(data, 'legacy', 'packages', 'acme', 'lib', '1.0.0.zip')));
    const again = await runCliOk(['mirror'], { cwd: root });
    assert.doesNotMatch(again.stderr, /match no source's checksum/);
  });

  test('a takeover killed after moving the old index resumes on the next command', async () => {
    const root = await newRoot(predecessorToml(upstream.url));
    // Where a kill right after the move leaves it: the old index in legacy/, no served index,
    // and an archive still in the old layout.
    const moved = path.join(root, 'data', 'legacy', 'index');
    await fs.mkdir(moved, { recursive: true });
    await git(['init', '-q', '-b', 'main', moved]);
    const archive = path.join(root, 'data', 'packages', 'acme', 'app', '1.0.0.zip');
    await fs.mkdir(path.dirname(archive), { recursive: true });
    await fs.writeFile(archive, fixture.archiveFor(APP, '1.0.0') as Buffer);
    const listed = await runCliOk(['source', 'list'], { cwd: root });
    assert.match(
      listed.stderr,
      /took over moonbit-registry-tools' data folder .*: 1 archive\(s\) wait in legacy\/packages/,
    );
    assert.deepEqual(await servedFiles(root), []);
    assert.ok(existsSync(path.join(root, 'data', 'legacy', 'packages', 'acme', 'app', '1.0.0.zip')));
  });

  test('config migrate rewrites the file in the current layout, comments kept', async () => {
    const root = await newRoot(predecessorToml(upstream.url, '# the end\n'));
    const migrated = await runCliOk(['config', 'migrate'], { cwd: root });
    assert.match(migrated.stdout, /\[upstream\] is now \[\[sources\]\] "upstream"/);
    const text = await fs.readFile(path.join(root, 'registry.toml'), 'utf8');
    assert.doesNotMatch(text, /^\[upstream\]/m);
    assert.doesNotMatch(text, /smart_http/);
    assert.match(text, /# patterns `mirror` uses when given none/);
    assert.match(text, /# the end/);
    assert.match(text, /^default_source = "upstream"/m);
    assert.match(text, /\[\[sources\]\]\nname = "upstream"/);
    const list = await runCliOk(['source', 'list'], { cwd: root });
    assert.doesNotMatch(list.stderr, /upstream\]|smart_http/);
    assert.match(list.stdout, /upstream \(default\)/);
    const twice = await runCliOk(['config', 'migrate'], { cwd: root });
    assert.match(twice.stdout, /already in the current layout/);
  });

  test('${...} placeholders in package_url_pattern reach the archives', async () => {
    const source = `[[sources]]
name = "tools"
url = "${upstream.url}"
index_url = "${upstream.url}/git/index"
package_url_pattern = "\${url}/user/\${username}/\${name}/\${version}.zip"
`;
    const root = await newRoot(`default_source = "tools"\n${source}`);
    await runCliOk(['mirror', OTHER], { cwd: root });
    assert.ok(upstream.requests.some((r) => r.url === `/user/other/tool/2.0.0.zip` && r.status === 200));
  });

  test('a key that is truly unknown, or an "http" index, is an error naming its line', async () => {
    const typo = await newRoot(predecessorToml(upstream.url).replace('port = 8080', 'prot = 8080'));
    const bad = await runCli(['source', 'list'], { cwd: typo });
    assert.notEqual(bad.code, 0);
    assert.match(
      bad.stderr,
      /registry\.toml line 17: server\.prot: Unrecognized key: "prot"; did you mean "port"\?/,
    );

    const http = await newRoot(
      `[[sources]]\nname = "h"\nurl = "${upstream.url}"\nindex_url = "${upstream.url}/git/index"\nindex_type = "http"\n`,
    );
    const refused = await runCli(['source', 'list'], { cwd: http });
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      /line 5: sources\[0\]\.index_type: "http" indexes are not supported: `moon` reads the index only through git/,
    );
  });
});
