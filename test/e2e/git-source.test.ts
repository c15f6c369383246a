/**
 * Git sources end to end: a module's repository served over smart HTTP (git http-backend) and
 * over file://, its release tags mirrored by the real CLI and installed by the moon-like client.
 *
 * 1. Two tags install from `serve`; a new tag appears at the next mirror.
 * 2. A second registry packing the same tags (over file://) gets the same checksums.
 * 3. A force-moved tag is named in a warning, the run succeeds and the version keeps its bytes;
 *    a tag whose moon.mod.json says another version is skipped with a warning naming it.
 * 4. A private repository: refused without credentials, fetched with [sources.auth].
 * 5. A module in a subfolder, chosen by ref_pattern, served by `serve --proxy`: packed on first
 *    request, once for twelve clients; /status, the status page and / name the repository; a
 *    new tag is listed by the next sync and installs.
 * (1 also damages an archive: `verify --repair` packs it again from its commit.)
 */
import assert from 'node:assert/strict';
import { appendFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { strFromU8, unzipSync } from 'fflate';
import { pathExists } from '../../src/fs/path-exists.js';
import { runCli, runCliOk, startServe, tempDir } from '../support/cli.js';
import { sha256Hex } from '../support/fixture.js';
import { git } from '../support/git.js';
import { type GitRepoServer, serveGitRepos } from '../support/git-repo-server.js';
import { install, readIndexDir, update } from '../support/moon-client.js';
import { waitFor } from '../support/test-registry.js';

const MODULE = 'team/tool';
const ADMIN_TOKEN = 'git-source-admin-5e1b';

interface StatusJson {
  sources: Array<{ name: string; url: string }>;
}
interface RootJson {
  sources: Array<Record<string, unknown> & { name: string }>;
}

describe('git sources', () => {
  let scratch: { path: string; remove: () => Promise<void> };
  let work: string;
  let repos: string;
  let open: GitRepoServer;
  let locked: GitRepoServer;
  let a: string;
  let count = 0;

  /** Commits moon.mod.json saying `version` (and a source file) and pushes `tag` to the served repositories. */
  async function release(tag: string, version: string, force = false): Promise<void> {
    await writeFile(path.join(work, 'moon.mod.json'), JSON.stringify({ name: MODULE, version }));
    await writeFile(
      path.join(work, 'src/lib/lib.mbt'),
      `pub fn version() -> String { "${version} ${++count}" }\n`,
    );
    await git(['-C', work, 'add', '-A']);
    await git(['-C', work, 'commit', '-q', '-m', `release ${tag}`]);
    await git(['-C', work, 'tag', ...(force ? ['-f'] : []), tag]);
    for (const bare of ['tool.git', 'private.git']) {
      await git([
        '-C',
        work,
        'push',
        '-q',
        '--force',
        path.join(repos, bare),
        'main',
        `+refs/tags/${tag}:refs/tags/${tag}`,
      ]);
    }
  }

  async function newRegistry(name: string): Promise<string> {
    const root = path.join(scratch.path, name);
    await runCliOk(['init', root, '--name', name]);
    await runCliOk(['source', 'disable', 'mooncakes'], { cwd: root });
    return root;
  }

  before(async () => {
    scratch = await tempDir('mr-git-source-');
    work = path.join(scratch.path, 'work');
    repos = path.join(scratch.path, 'repos');
    await mkdir(path.join(work, 'src/lib'), { recursive: true });
    await git(['init', '-q', '--initial-branch=main', work]);
    await git(['-C', work, 'config', 'user.email', 't@example.com']);
    await git(['-C', work, 'config', 'user.name', 't']);
    await writeFile(path.join(work, 'src/lib/moon.pkg.json'), '{}');
    for (const bare of ['tool.git', 'private.git'])
      await git(['init', '-q', '--bare', path.join(repos, bare)]);
    open = await serveGitRepos(repos);
    locked = await serveGitRepos(repos, { username: 'ci', password: 's3cret' });
    await release('v0.1.0', '0.1.0');
    await release('0.2.0', '0.2.0');
    a = await newRegistry('a');
    await runCliOk(['source', 'add', 'tool', '--git', `${open.url}/tool.git`], { cwd: a });
    await runCliOk(['source', 'default', 'tool'], { cwd: a });
  });

  after(async () => {
    await open?.close();
    await locked?.close();
    await scratch?.remove();
  });

  test('two tags install from serve; a new tag appears at the next mirror', async () => {
    const mirrored = await runCliOk(['mirror', '--full'], { cwd: a });
    assert.doesNotMatch(mirrored.stderr, /warning/, mirrored.stderr);
    assert.deepEqual([...(await served(a)).keys()], ['0.1.0', '0.2.0']);
    const server = await startServe(a);
    const home = path.join(scratch.path, 'home');
    try {
      await update(server.url, home);
      for (const version of ['0.1.0', '0.2.0']) {
        const installed = await install(server.url, home, { [MODULE]: version });
        const bytes = installed.get(MODULE)?.bytes as Buffer;
        assert.equal(sha256Hex(bytes), (await served(a)).get(version), `${MODULE}@${version} installs`);
      }
    } finally {
      await server.stop();
    }
    await release('v0.3.0', '0.3.0');
    await runCliOk(['mirror', '--full'], { cwd: a });
    assert.deepEqual([...(await served(a)).keys()], ['0.1.0', '0.2.0', '0.3.0']);

    // A damaged archive: `verify --repair` packs it again from its commit, same bytes, line kept.
    const before = await served(a);
    const file = path.join(a, 'data/packages', MODULE, '0.1.0', `${before.get('0.1.0')}.zip`);
    const good = await readFile(file);
    await writeFile(file, good.subarray(0, good.length - 10));
    assert.notEqual((await runCli(['verify'], { cwd: a })).code, 0, 'verify sees the damage');
    const repaired = await runCliOk(['verify', '--repair'], { cwd: a });
    assert.deepEqual(await readFile(file), good, repaired.stdout + repaired.stderr);
    assert.deepEqual(await served(a), before);
  });

  test('a second registry packing the same tags over file:// gets the same checksums', async () => {
    const b = await newRegistry('b');
    const url = `file://${path.join(repos, 'tool.git')}`;
    await runCliOk(['source', 'add', 'tool', '--git', url], { cwd: b });
    const listed = (await runCliOk(['source', 'list'], { cwd: b })).stdout;
    assert.match(listed, new RegExp(`^Repository: ${url}$`, 'm'));
    assert.match(listed, /^Tags: semver versions, v optional$/m);
    await runCliOk(['mirror', '--full', '-s', 'tool'], { cwd: b });
    assert.deepEqual(await served(b), await served(a));
  });

  test('a moved tag is named and keeps its bytes; a tag with another version is skipped, named', async () => {
    const before = await served(a);
    await release('v0.1.0', '0.1.0', true);
    await release('v0.4.0', '0.3.9');
    const result = await runCli(['mirror', '--full'], { cwd: a });
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /tag v0\.1\.0 moved from [0-9a-f]{12} to [0-9a-f]{12}: version 0\.1\.0 keeps what it served/,
    );
    assert.match(
      result.stderr,
      /tag v0\.4\.0 skipped: its moon\.mod\.json says version 0\.3\.9, the tag 0\.4\.0/,
    );
    assert.deepEqual(await served(a), before, 'nothing served changed');
  });

  test('a private repository: refused without credentials, fetched with [sources.auth]', async () => {
    const c = await newRegistry('c');
    await runCliOk(['source', 'add', 'priv', '--git', `${locked.url}/private.git`], { cwd: c });
    const refused = await runCli(['mirror', '--full', '-s', 'priv'], { cwd: c });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /source "priv" .*cannot fetch the repository/);
    // The last [[sources]] table is priv's: its auth sub-table follows it.
    await appendFile(
      path.join(c, 'registry.toml'),
      '\n[sources.auth]\ntype = "basic"\nusername = "ci"\npassword = "${GIT_SOURCE_PASSWORD}"\n',
    );
    const fetched = await runCli(['mirror', '--full', '-s', 'priv'], {
      cwd: c,
      env: { GIT_SOURCE_PASSWORD: 's3cret' },
    });
    assert.equal(fetched.code, 0, fetched.stderr);
    assert.ok(!fetched.stderr.includes('s3cret'), 'the password stays out of the output');
    assert.ok((await served(c)).has('0.2.0'));
  });

  test('a module in a subfolder of a repository of several, chosen by ref_pattern; served by a proxy', async () => {
    const mono = path.join(scratch.path, 'mono');
    await mkdir(path.join(mono, 'modules/json/src'), { recursive: true });
    await git(['init', '-q', '--initial-branch=main', mono]);
    await git(['-C', mono, 'config', 'user.email', 't@example.com']);
    await git(['-C', mono, 'config', 'user.name', 't']);
    await writeFile(path.join(mono, 'README.md'), 'not packed: outside the module folder\n');
    await writeFile(
      path.join(mono, 'modules/json/moon.mod.json'),
      JSON.stringify({ name: 'team/json', version: '1.2.0' }),
    );
    await writeFile(path.join(mono, 'modules/json/src/moon.pkg.json'), '{}');
    await git(['-C', mono, 'add', '-A']);
    await git(['-C', mono, 'commit', '-q', '-m', 'json 1.2.0']);
    await git(['-C', mono, 'tag', 'json-v1.2.0']);
    await git(['-C', mono, 'tag', 'v9.9.9']); // the root has no module: not chosen by the pattern
    await git(['clone', '-q', '--bare', mono, path.join(repos, 'mono.git')]);

    const d = await newRegistry('d');
    await runCliOk(
      [
        'source',
        'add',
        'mono',
        '--git',
        `${open.url}/mono.git`,
        '--path',
        'modules/json',
        '--ref-pattern',
        'json-v*',
      ],
      { cwd: d },
    );
    await runCliOk(['config', 'server.admin_token', ADMIN_TOKEN], { cwd: d });
    // Never mirrored: serve --proxy fetches the repository at its first sync.
    const server = await startServe(d, ['--proxy']);
    const home = path.join(scratch.path, 'home-proxy');
    try {
      for (let i = 0; i < 300; i++) {
        const res = await fetch(`${server.url}/health`);
        const health = (await res.json()) as { sync?: { last_run: unknown } };
        if (res.status === 200 && health.sync?.last_run) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // Listed at sync, packed on first request: nothing stored yet.
      const stored = path.join(d, 'data/packages/team/json');
      assert.equal(await pathExists(stored), false, 'no archive packed before a client asks');
      const answers = await Promise.all(
        Array.from({ length: 12 }, async () => {
          const res = await fetch(`${server.url}/user/team/json/1.2.0.zip`);
          return { status: res.status, sum: sha256Hex(Buffer.from(await res.arrayBuffer())) };
        }),
      );
      assert.deepEqual(new Set(answers.map((x) => `${x.status} ${x.sum}`)).size, 1, JSON.stringify(answers));
      assert.equal(answers[0]?.status, 200);
      // The log is written after each answer: wait for all twelve requests' lines.
      const zipRequests = () => server.output().match(/"url":"\/user\/team\/json\/1\.2\.0\.zip"/g) ?? [];
      await waitFor(() => zipRequests().length === 12, 'the log of twelve archive requests');
      const packs = server.output().match(/archive fetched from upstream/g) ?? [];
      assert.equal(packs.length, 1, `one packing for twelve clients:\n${server.output()}`);

      // Where its versions come from, for people and machines: the repository, not a placeholder.
      const repository = `${open.url}/mono.git`;
      const status = (await (await fetch(`${server.url}/status`)).json()) as StatusJson;
      assert.equal(status.sources.find((s) => s.name === 'mono')?.url, `${repository} (modules/json)`);
      const page = await (await fetch(`${server.url}/status`, { headers: { accept: 'text/html' } })).text();
      assert.ok(
        page.includes(repository) && !page.includes('.invalid'),
        'the status page names the repository',
      );
      const root = (await (await fetch(`${server.url}/`)).json()) as RootJson;
      assert.deepEqual(
        root.sources.find((s) => s.name === 'mono'),
        {
          name: 'mono',
          type: 'git',
          url: null,
          index_url: null,
          git_url: repository,
          path: 'modules/json',
          ref_pattern: 'json-v*',
          priority: 110,
          enabled: true,
          default: false,
        },
      );

      await update(server.url, home);
      const installed = await install(server.url, home, { 'team/json': '1.2.0' });
      const bytes = installed.get('team/json')?.bytes as Buffer;
      assert.ok(bytes.includes(Buffer.from('moon.mod.json')), 'moon.mod.json at the zip root');
      assert.ok(!bytes.includes(Buffer.from('README.md')), 'nothing from outside the module folder');

      // A new tag: the next sync (here one an operator asks for) lists it, and it installs.
      const manifest = path.join(mono, 'modules/json/moon.mod.json');
      await writeFile(manifest, JSON.stringify({ name: 'team/json', version: '1.3.0' }));
      await git(['-C', mono, 'commit', '-qam', 'json 1.3.0']);
      await git(['-C', mono, 'tag', 'json-v1.3.0']);
      await git(['-C', mono, 'push', '-q', path.join(repos, 'mono.git'), 'json-v1.3.0']);
      const sync = await fetch(`${server.url}/admin/sync`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        signal: AbortSignal.timeout(60_000),
      });
      assert.equal(sync.status, 200, await sync.text());
      await update(server.url, home);
      const newer = await install(server.url, home, { 'team/json': '1.3.0' });
      const files = unzipSync(newer.get('team/json')?.bytes as Buffer);
      assert.equal(JSON.parse(strFromU8(files['moon.mod.json'] as Uint8Array)).version, '1.3.0');
    } finally {
      await server.stop();
    }
  });

  /** version -> checksum of MODULE in the registry's served index. */
  async function served(root: string): Promise<Map<string, string>> {
    const clone = path.join(scratch.path, `clone-${++count}`);
    await git(['clone', '-q', path.join(root, 'data/index'), clone]);
    try {
      const index = await readIndexDir(clone);
      const versions = [...(index.modules.get(MODULE) ?? new Map()).entries()].map(
        ([version, entry]) => [version, entry.checksum ?? ''] as [string, string],
      );
      return new Map(versions.sort(([x], [y]) => x.localeCompare(y)));
    } finally {
      await rm(clone, { recursive: true, force: true });
    }
  }
});
