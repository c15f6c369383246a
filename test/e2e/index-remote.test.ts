/**
 * `[git]` remote of the served index, end to end with the real CLI: `sync --push` to a bare
 * repository behind git's own http-backend (open, and behind Basic auth), `[git] auto_push`
 * after a publish, `sync --pull` into a fresh registry and its refusals (diverged history, a
 * remote that is down), and file:// remotes. Modules come from `publish` of tiny zips, so no
 * upstream is needed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { errorLines, runCliOk, tempDir } from '../support/cli.js';
import { pipeCgiResponse } from '../support/fake-upstream.js';
import { git, isolatedGitEnv } from '../support/git.js';
import { moduleZip } from '../support/module-zip.js';
import { CliSession, filesContaining, gitHead } from '../support/multi-upstream.js';

const USER = 'ci';
const PASSWORD = 'git-remote-secret-9c1e';
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
/** No user or system git config in the CLI's git either (credential helpers, insteadOf). */
const GIT_ENV = { GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };

/** Bare repositories under `root`, served by `git http-backend` with pushes allowed. */
class GitRemoteServer {
  private constructor(
    private readonly server: http.Server,
    readonly root: string,
  ) {}

  /** `authorization`: the only Authorization header let through (401 otherwise). */
  static async start(root: string, authorization?: string): Promise<GitRemoteServer> {
    const server = http.createServer((req, res) => {
      if (authorization && req.headers.authorization !== authorization) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"', 'Content-Length': 0 });
        res.end();
        return;
      }
      serveGit(root, req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new GitRemoteServer(server, root);
  }

  url(repo: string): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/${repo}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function serveGit(root: string, req: http.IncomingMessage, res: http.ServerResponse): void {
  const [pathInfo = '/', query = ''] = (req.url ?? '/').split('?', 2);
  const env: NodeJS.ProcessEnv = {
    GIT_PROJECT_ROOT: root,
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: decodeURIComponent(pathInfo),
    REQUEST_METHOD: req.method ?? 'GET',
    QUERY_STRING: query,
    CONTENT_TYPE: req.headers['content-type'] ?? '',
    REMOTE_ADDR: '127.0.0.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
  };
  if (req.headers['content-length']) env.CONTENT_LENGTH = req.headers['content-length'];
  if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = req.headers['content-encoding'];
  const protocol = req.headers['git-protocol'];
  if (typeof protocol === 'string') env.GIT_PROTOCOL = protocol;
  const child = spawn('git', ['http-backend'], { env: isolatedGitEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  child.stdin.on('error', () => {});
  req.pipe(child.stdin);
  pipeCgiResponse(child, res, () => stderr);
}

let scratch: { path: string; remove: () => Promise<void> };
/** As `init` leaves a registry, with a [git] table. */
let pristine: string;
/** The pristine registry.toml, whose [git] keys `registry()` rewrites. */
let pristineToml: string;
/** A copy of pristine with alice/a@1.0.0 and bob/b@0.1.0 published: three commits. */
let origin: string;
let zips: Map<string, string>;
let open: GitRemoteServer;
let guarded: GitRemoteServer;
let counter = 0;

before(async () => {
  scratch = await tempDir('mr-index-remote-');
  pristine = path.join(scratch.path, 'pristine');
  await runCliOk(['init', pristine, '--name', 'pristine']);
  // Through `config`, wherever init puts [git]; each registry then edits the lines (withGit).
  await runCliOk(['config', 'git.auto_push', 'false'], { cwd: pristine });
  pristineToml = await readFile(path.join(pristine, 'registry.toml'), 'utf8');
  zips = new Map();
  for (const [module, version] of [
    ['alice/a', '1.0.0'],
    ['alice/a', '1.1.0'],
    ['bob/b', '0.1.0'],
    ['carol/c', '2.0.0'],
  ] as const) {
    const file = path.join(scratch.path, `${module.replace('/', '-')}-${version}.zip`);
    await writeFile(file, moduleZip({ name: module, version }, { 'lib.mbt': 'pub fn f() -> Int { 1 }\n' }));
    zips.set(`${module}@${version}`, file);
  }
  origin = path.join(scratch.path, 'origin');
  await cp(pristine, origin, { recursive: true });
  for (const key of ['alice/a@1.0.0', 'bob/b@0.1.0']) await publish(new CliSession(origin, GIT_ENV), key);
  const remotes = path.join(scratch.path, 'remotes');
  await mkdir(remotes);
  open = await GitRemoteServer.start(remotes);
  guarded = await GitRemoteServer.start(remotes, BASIC);
});

after(async () => {
  await Promise.allSettled([open?.close(), guarded?.close()]);
  await scratch?.remove();
});

/** A new bare repository that accepts pushes over HTTP, empty or with origin's index. */
async function bareRemote(withOrigin = false): Promise<{ name: string; gitDir: string; fileUrl: string }> {
  const name = `remote-${counter++}.git`;
  const gitDir = path.join(scratch.path, 'remotes', name);
  await git(['init', '--bare', '--quiet', '--initial-branch=main', gitDir]);
  await git(['--git-dir', gitDir, 'config', 'http.receivepack', 'true']);
  if (withOrigin) await git(['--git-dir', indexOf(origin), 'push', '--quiet', gitDir, 'main:main']);
  return { name, gitDir, fileUrl: `file://${gitDir}` };
}

interface GitSettings {
  remote_url?: string;
  branch?: string;
  auto_push?: boolean;
}

/**
 * A registry with these [git] settings, copied from pristine or origin (sharing their first
 * commit), or made by `init` with a first commit of its own.
 */
async function registry(settings: GitSettings, from: 'pristine' | 'origin' | 'init') {
  const root = path.join(scratch.path, `registry-${counter++}`);
  if (from === 'init') await runCliOk(['init', root, '--name', path.basename(root)]);
  else await cp(from === 'origin' ? origin : pristine, root, { recursive: true });
  await setGit(root, settings);
  return { root, index: indexOf(root), cli: new CliSession(root, GIT_ENV) };
}

function indexOf(root: string): string {
  return path.join(root, 'data', 'index');
}

/** Rewrites the registry's [git] settings (quicker than a `config` run per key). */
function setGit(root: string, settings: GitSettings): Promise<void> {
  return writeFile(path.join(root, 'registry.toml'), withGit(pristineToml, settings));
}

/** Replaces each key's line in [git], or adds it after auto_push. */
function withGit(toml: string, settings: GitSettings): string {
  let text = toml;
  for (const [key, value] of Object.entries(settings)) {
    const line = `${key} = ${JSON.stringify(value)}`;
    const existing = new RegExp(`^${key} = .*$`, 'm');
    text = existing.test(text)
      ? text.replace(existing, line)
      : text.replace(/^auto_push = .*$/m, (autoPush) => `${autoPush}\n${line}`);
    assert.ok(text.includes(line), `registry.toml takes ${line}`);
  }
  return text;
}

function publish(cli: CliSession, key: string) {
  const zip = zips.get(key);
  assert.ok(zip, `no test zip for ${key}`);
  return cli.ok(['publish', zip]);
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function clonedFiles(url: string): Promise<string> {
  const dir = path.join(scratch.path, `clone-${counter++}`);
  await git(['clone', '--quiet', '--branch', 'main', url, dir]);
  return git(['-C', dir, 'ls-files', '-s']);
}

async function tempRefs(gitDir: string): Promise<string> {
  return (await git(['--git-dir', gitDir, 'for-each-ref', 'refs/remote-sync/'])).trim();
}

describe('sync --push', () => {
  test('pushes the served main over HTTP, then finds it up to date', async () => {
    const remote = await bareRemote();
    const reg = await registry({ remote_url: open.url(remote.name) }, 'origin');
    const first = await reg.cli.ok(['sync', '--push']);
    const head = await gitHead(reg.index);
    assert.equal(await gitHead(remote.gitDir), head, 'the remote branch is the served main');
    assert.match(first.stdout, new RegExp(`^pushed main ${head.slice(0, 12)} \\(new branch\\) to `));

    await publish(reg.cli, 'alice/a@1.1.0');
    const second = await reg.cli.ok(['sync', '--push', '--json']);
    const newHead = await gitHead(reg.index);
    assert.deepEqual(JSON.parse(second.stdout), {
      push: { status: 'pushed', remote: open.url(remote.name), branch: 'main', from: head, to: newHead },
    });
    assert.equal(await gitHead(remote.gitDir), newHead);
    const third = await reg.cli.ok(['sync', '--push']);
    assert.match(third.stdout, /^already up to date: /);
  });

  test('sends [git.auth] to an http remote; the secret stays out of output and files', async () => {
    const remote = await bareRemote();
    const reg = await registry({ remote_url: guarded.url(remote.name), branch: 'index' }, 'origin');
    await appendFile(
      path.join(reg.root, 'registry.toml'),
      `\n[git.auth]\ntype = "basic"\nusername = "${USER}"\npassword = "\${GIT_PASSWORD}"\n`,
    );

    const unset = await reg.cli.run(['sync', '--push']);
    assert.notEqual(unset.code, 0);
    assert.match(unset.stderr, /\[git\.auth\]: environment variable GIT_PASSWORD is not set/);

    const wrong = await reg.cli.run(['sync', '--push'], { env: { GIT_PASSWORD: `${PASSWORD}-wrong` } });
    assert.notEqual(wrong.code, 0, 'wrong credentials fail');
    assert.equal(errorLines(wrong.stderr).length, 1, wrong.stderr);
    assert.ok(
      wrong.stderr.includes(
        `error: cannot push the index to ${guarded.url(remote.name)} (branch index): the remote refused the credentials`,
      ),
      wrong.stderr,
    );
    assert.match(wrong.stderr, /hint: check \[git\.auth\]/);
    assert.equal(await gitHead(remote.gitDir, 'refs/heads/index').catch(() => 'none'), 'none');

    await reg.cli.ok(['sync', '--push'], { env: { GIT_PASSWORD: PASSWORD } });
    assert.equal(await gitHead(remote.gitDir, 'refs/heads/index'), await gitHead(reg.index));

    const secrets = [PASSWORD, `${PASSWORD}-wrong`, BASIC.slice('Basic '.length)];
    const printed = reg.cli.allOutput();
    for (const secret of secrets) assert.ok(!printed.includes(secret), `output shows ${secret}:\n${printed}`);
    assert.deepEqual(
      await filesContaining(reg.root, secrets),
      [],
      'no file under the registry holds a secret',
    );
  });

  test('a remote with commits this registry lacks (file://) is refused, not overwritten', async () => {
    const remote = await bareRemote(true);
    const theirs = await gitHead(remote.gitDir);
    const reg = await registry({ remote_url: remote.fileUrl }, 'pristine');
    await publish(reg.cli, 'carol/c@2.0.0');
    const refused = await reg.cli.run(['sync', '--push']);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      /error: .*: the remote's branch main has commits this registry does not have/,
    );
    assert.match(refused.stderr, /hint: run `moonbit-registry sync --pull` first/);
    assert.equal(await gitHead(remote.gitDir), theirs, 'the remote is unchanged');
  });
});

describe('[git] auto_push', () => {
  test('a publish moves the remote branch without any sync; a dead remote only warns', async () => {
    const remote = await bareRemote();
    const reg = await registry({ remote_url: open.url(remote.name), auto_push: true }, 'origin');
    await publish(reg.cli, 'alice/a@1.1.0');
    assert.equal(await gitHead(remote.gitDir), await gitHead(reg.index));

    const down = `http://127.0.0.1:${await closedPort()}/gone.git`;
    await setGit(reg.root, { remote_url: down, auto_push: true });
    const published = await publish(reg.cli, 'carol/c@2.0.0');
    assert.ok(
      published.stderr.includes(`warning: auto_push to ${down} failed: `) &&
        published.stderr.includes('; the index is committed here: run `moonbit-registry sync --push`'),
      published.stderr,
    );
    assert.notEqual(await gitHead(reg.index), await gitHead(remote.gitDir), 'the publish itself stands');
  });
});

describe('sync --pull', () => {
  test('a fresh registry takes the remote index, then fast-forwards and is up to date', async () => {
    const remote = await bareRemote();
    const source = await registry({ remote_url: remote.fileUrl, auto_push: true }, 'origin');
    await source.cli.ok(['sync', '--push']);

    const reg = await registry({ remote_url: open.url(remote.name) }, 'init');
    const fresh = await reg.cli.ok(['sync']);
    assert.equal(await gitHead(reg.index), await gitHead(remote.gitDir));
    assert.match(
      fresh.stdout,
      /^pulled 3 commits from .*, replacing the empty first index \(2 modules, 2 versions; 2 without archives here: `moonbit-registry mirror` with the same patterns, or `serve --proxy`, fetches them\)/,
    );
    assert.equal(
      await clonedFiles(reg.index),
      await clonedFiles(remote.gitDir),
      'clients see the same files',
    );

    await publish(source.cli, 'alice/a@1.1.0');
    const before = await gitHead(reg.index);
    const forward = await reg.cli.ok(['sync', '--pull', '--json']);
    assert.deepEqual(JSON.parse(forward.stdout), {
      pull: {
        status: 'fast-forward',
        remote: open.url(remote.name),
        branch: 'main',
        from: before,
        to: await gitHead(remote.gitDir),
        commits: 1,
        modules: 2,
        versions: 3,
        without_archives: 3,
        unpublished_exclusive: [],
      },
    });
    const again = await reg.cli.ok(['sync']);
    assert.match(again.stdout, /^already up to date with /);
    assert.equal(await tempRefs(reg.index), '', 'the fetched ref is gone');
  });

  test('a pulled module under [hosted] exclusive that was never published here is warned about', async () => {
    const remote = await bareRemote();
    const source = await registry({ remote_url: remote.fileUrl }, 'origin');
    await source.cli.ok(['sync', '--push']);
    const reg = await registry({ remote_url: remote.fileUrl }, 'init');
    const toml = path.join(reg.root, 'registry.toml');
    const text = await readFile(toml, 'utf8');
    assert.match(text, /^exclusive = \[\]/m);
    await writeFile(toml, text.replace(/^exclusive = \[\]/m, 'exclusive = ["alice/*"]'));
    const pulled = await reg.cli.ok(['sync']);
    assert.match(
      pulled.stderr,
      /warning: the pulled index lists 1 module\(s\) under \[hosted\] exclusive that were never published here \(alice\/a\)/,
    );
  });

  test('refuses to rewrite served history, and a remote that is down changes nothing', async () => {
    const remote = await bareRemote(true);
    const reg = await registry({ remote_url: open.url(remote.name) }, 'pristine');
    await publish(reg.cli, 'carol/c@2.0.0');
    const mine = await gitHead(reg.index);
    const refused = await reg.cli.run(['sync', '--pull']);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      /error: cannot pull the index from .*diverged: taking it would rewrite the served history/,
    );
    assert.match(refused.stderr, /hint: push this index to another branch/);
    assert.equal(await gitHead(reg.index), mine, 'main is unchanged');
    assert.equal(await tempRefs(reg.index), '', 'the fetched ref is gone');

    const down = `http://127.0.0.1:${await closedPort()}/index.git`;
    await setGit(reg.root, { remote_url: down });
    for (const args of [['sync'], ['sync', '--push']]) {
      const failed = await reg.cli.run(args);
      assert.notEqual(failed.code, 0);
      assert.match(
        failed.stderr,
        new RegExp(`error: cannot (pull|push) the index (from|to) ${down} \\(branch main\\): `),
      );
      assert.match(failed.stderr, /hint: check git\.remote_url/);
      assert.equal(await gitHead(reg.index), mine);
    }
  });

  test('no remote configured: one error with the command that sets it', async () => {
    const reg = await registry({}, 'pristine');
    const result = await reg.cli.run(['sync']);
    assert.notEqual(result.code, 0);
    assert.deepEqual(errorLines(result.stderr), ['error: no [git] remote_url in registry.toml']);
    assert.match(result.stderr, /hint: moonbit-registry config git\.remote_url URL/);
  });
});
