/**
 * Hosted modules, end to end: `moon publish`'s request (a real multipart POST of a module zip)
 * against `serve`, then a moon-like client installs the module and its public dependencies from
 * the same registry. Tokens and their scopes, every kind of bad archive, concurrent publishes,
 * a patched public version, `[hosted] exclusive` against dependency confusion, the CLI's own
 * `publish`, `verify` and a second registry that uses the first as its source.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  initRegistryWithSource,
  isRecord,
  type RunningServer,
  runCli,
  runCliOk,
  startServe,
  tempDir,
} from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, checksumIn, type Fixture, sha256Hex } from '../support/fixture.js';
import { git } from '../support/git.js';
import { makeZip, moduleZip } from '../support/module-zip.js';
import { download, install, readIndex, update } from '../support/moon-client.js';

const X = 'moonbitlang/x';
const APP = 'company/app';
/** Limits small enough to test: set in registry.toml before serving. */
const MAX_ARCHIVE = 64 * 1024;
const MAX_ENTRIES = 40;
const MAX_UNCOMPRESSED = 256 * 1024;

let fixture: Fixture;
let upstream: FakeUpstream;
let registry: { root: string; remove: () => Promise<void> };
let scratch: { path: string; remove: () => Promise<void> };
let server: RunningServer;
/** Publishes company/* and patches moonbitlang/x. */
let ciToken: string;
/** Reads only. */
let readerToken: string;
let homes = 0;
/** An x version the upstream has: the one a patch overrules. */
let xVersion: string;

function tokenFrom(output: string): string {
  const token = output.trim().split('\n')[0] ?? '';
  assert.match(token, /^mbr_/);
  return token;
}

before(async () => {
  fixture = await buildFixture();
  upstream = await FakeUpstream.start({ fixture });
  registry = await initRegistryWithSource('up', upstream.url);
  scratch = await tempDir('mr-publish-');
  const cwd = registry.root;
  await runCliOk(['mirror', X, '--strict'], { cwd });
  const limits: Array<[string, number]> = [
    ['hosted.max_archive_size', MAX_ARCHIVE],
    ['hosted.max_entries', MAX_ENTRIES],
    ['hosted.max_uncompressed_size', MAX_UNCOMPRESSED],
  ];
  for (const [key, value] of limits) await runCliOk(['config', key, String(value)], { cwd });
  ciToken = tokenFrom((await runCliOk(['token', 'add', 'ci', '--publish', 'company/*', X], { cwd })).stdout);
  readerToken = tokenFrom((await runCliOk(['token', 'add', 'reader'], { cwd })).stdout);
  const versions = [...(fixture.modules.get(X)?.keys() ?? [])];
  assert.ok(versions[0], `fixture precondition: ${X} has versions`);
  xVersion = versions[0];
  server = await startServe(cwd, ['--log-format', 'json']);
});

after(async () => {
  await server?.stop();
  await Promise.allSettled([upstream?.close(), registry?.remove(), scratch?.remove(), fixture?.cleanup()]);
});

interface PublishReply {
  status: number;
  body: Record<string, unknown>;
}

/** Exactly what `moon publish` sends: multipart with a `token` text field and a `file` zip. */
async function publish(zip: Buffer, token: string | undefined, headers: Record<string, string> = {}) {
  const form = new FormData();
  if (token !== undefined) form.set('token', token);
  form.set('file', new Blob([zip], { type: 'application/zip' }), 'module.zip');
  const res = await fetch(`${server.url}/api/v0/publish`, { method: 'POST', body: form, headers });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`publish answered ${res.status} without JSON: ${text}`);
  }
  assert.ok(isRecord(body), text);
  return { status: res.status, body } satisfies PublishReply;
}

function appManifest(version: string, extra: Record<string, unknown> = {}) {
  return {
    name: APP,
    version,
    deps: { [X]: xVersion },
    readme: 'README.md',
    license: 'Apache-2.0',
    keywords: ['internal'],
    description: 'an internal app',
    ...extra,
  };
}

function appZip(version: string, marker = 'v1'): Buffer {
  return moduleZip(appManifest(version), {
    'README.md': `# app ${marker}\n`,
    'src/lib.mbt': `pub fn version() -> String { "${version} ${marker}" }\n`,
    'src/moon.pkg.json': '{}\n',
  });
}

async function servedHead(): Promise<string> {
  return (await git(['--git-dir', path.join(registry.root, 'data', 'index'), 'rev-parse', 'main'])).trim();
}

function newHome(): string {
  return path.join(scratch.path, `home-${homes++}`);
}

describe('publishing over HTTP as moon publish does', () => {
  test('a module publishes; moon installs it and its public dependencies from the same registry', async () => {
    const zip = appZip('0.1.0');
    const reply = await publish(zip, ciToken);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    assert.equal(reply.body.status, 'ok');
    assert.equal(reply.body.checksum, sha256Hex(zip));

    const home = newHome();
    await update(server.url, home);
    const index = await readIndex(home);
    const entry = index.modules.get(APP)?.get('0.1.0');
    assert.ok(entry, 'the published version is in the index right after the 200');
    // The line is moon.mod.json as written, plus checksum and created_at, in that order.
    assert.deepEqual(Object.keys(entry.fields), [
      ...Object.keys(appManifest('0.1.0')),
      'checksum',
      'created_at',
    ]);
    assert.equal(entry.checksum, sha256Hex(zip));
    assert.match(String(entry.fields.created_at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/);
    const installed = await install(server.url, home, { [APP]: '0.1.0' });
    assert.deepEqual(installed.get(APP)?.bytes, zip);
    assert.equal(installed.get(X)?.version, xVersion, 'the public dependency comes from the same registry');

    const module = (await (await fetch(`${server.url}/user/${APP}`)).json()) as {
      versions: Array<{ version: string; source: string; stored: boolean }>;
    };
    assert.deepEqual(
      module.versions.map((v) => [v.version, v.source, v.stored]),
      [['0.1.0', 'local', true]],
    );
    assert.match(server.output(), /"msg":"publish"/);
    assert.match(server.output(), /"token":"ci"/);
  });

  test('the same bytes again: 200, nothing changes; other bytes for that version: 409; Bearer works too', async () => {
    const zip = appZip('0.2.0');
    assert.equal((await publish(zip, undefined, { Authorization: `Bearer ${ciToken}` })).status, 200);
    const head = await servedHead();
    const again = await publish(zip, ciToken);
    assert.equal(again.status, 200);
    assert.equal(again.body.result, 'unchanged');
    assert.equal(await servedHead(), head, 'no new index commit');
    const other = await publish(appZip('0.2.0', 'v2'), ciToken);
    assert.equal(other.status, 409, JSON.stringify(other.body));
    assert.match(String(other.body.error), /already published with other bytes/);
    assert.equal(await servedHead(), head);
  });

  test('tokens: none or unknown 401, a read-only token or a module outside the scope 403', async () => {
    const zip = appZip('0.3.0');
    const none = await publish(zip, undefined);
    assert.equal(none.status, 401);
    assert.match(String(none.body.error), /token is required/);
    assert.equal((await publish(zip, 'mbr_not-a-token')).status, 401);
    const reader = await publish(zip, readerToken);
    assert.equal(reader.status, 403);
    assert.match(String(reader.body.error), /may not publish company\/app/);
    const outside = await publish(moduleZip({ name: 'other/thing', version: '1.0.0' }), ciToken);
    assert.equal(outside.status, 403);
    // 401 comes before everything else, a bad archive included.
    assert.equal((await publish(Buffer.from('not a zip'), undefined)).status, 401);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /moonbit_registry_publishes_total\{result="unauthorized"\} [3-9]/);
    assert.match(metrics, /moonbit_registry_publishes_total\{result="forbidden"\} [2-9]/);
  });

  test('bad archives get 400 (413 when too large) saying what is wrong; nothing is stored or served', async () => {
    const head = await servedHead();
    const good = JSON.stringify(appManifest('9.9.9'));
    const cases: Array<[string, Buffer, number, RegExp]> = [
      ['not a zip', Buffer.from('PK\u0003\u0004 this is not a zip at all'), 400, /not a zip file/],
      [
        'zip slip',
        makeZip([
          { name: 'moon.mod.json', data: good },
          { name: '../../evil.sh', data: 'x' },
        ]),
        400,
        /leaves or hides in the root|relative path/,
      ],
      [
        'absolute path',
        makeZip([
          { name: 'moon.mod.json', data: good },
          { name: '/etc/cron.d/x', data: 'x' },
        ]),
        400,
        /absolute path/,
      ],
      [
        'backslash',
        makeZip([
          { name: 'moon.mod.json', data: good },
          { name: '..\\..\\evil.bat', data: 'x' },
        ]),
        400,
        /backslash|invalid characters/,
      ],
      [
        'symlink',
        makeZip([
          { name: 'moon.mod.json', data: good },
          { name: 'src/link', data: '/etc/passwd', symlink: true },
        ]),
        400,
        /symbolic link/,
      ],
      [
        'duplicate',
        makeZip([
          { name: 'moon.mod.json', data: good },
          { name: 'moon.mod.json', data: good },
        ]),
        400,
        /clashes with another entry/,
      ],
      [
        'a case twin of moon.mod.json (one file on macOS and Windows)',
        makeZip([
          { name: 'moon.mod.json', data: good },
          { name: 'MOON.MOD.JSON', data: JSON.stringify({ name: 'company/evil', version: '9.9.9' }) },
        ]),
        400,
        /clashes with another entry/,
      ],
      [
        'a file where a folder is',
        makeZip([
          { name: 'moon.mod.json', data: good },
          { name: 'srcs', data: 'x' },
          { name: 'srcs/lib.mbt', data: 'x' },
        ]),
        400,
        /clashes with another entry/,
      ],
      [
        'a .git folder',
        makeZip([
          { name: 'moon.mod.json', data: good },
          { name: '.git/config', data: '[core]\n\tfsmonitor = evil\n' },
        ]),
        400,
        /git's own folder name/,
      ],
      [
        'a Windows device name',
        makeZip([
          { name: 'moon.mod.json', data: good },
          { name: 'src/con.mbt', data: 'x' },
        ]),
        400,
        /reserved device name/,
      ],
      [
        'another name in the local header',
        makeZip([
          { name: 'moon.mod.json', data: good },
          { name: 'src/a.mbtx', data: 'x', localName: '../../x.sh' },
        ]),
        400,
        /another name in its local header/,
      ],
      [
        'a key twice in moon.mod.json',
        makeZip([
          { name: 'moon.mod.json', data: '{"name": "other/x", "version": "1.0.0", "name": "company/dup"}' },
        ]),
        400,
        /has the key "name" twice/,
      ],
      [
        'a lone surrogate',
        makeZip([
          {
            name: 'moon.mod.json',
            data: '{"name": "company/app", "version": "1.0.0", "description": "\\ud800"}',
          },
        ]),
        400,
        /lone surrogate/,
      ],
      [
        'nesting a thousand deep',
        makeZip([
          {
            name: 'moon.mod.json',
            data: `{"name": "company/app", "version": "1.0.0", "x": ${'['.repeat(1000)}${']'.repeat(1000)}}`,
          },
        ]),
        400,
        /nests deeper than/,
      ],
      ['no moon.mod.json', makeZip([{ name: 'src/lib.mbt', data: 'x' }]), 400, /no moon\.mod\.json/],
      [
        'moon.mod.json in a folder',
        makeZip([{ name: 'app/moon.mod.json', data: good }]),
        400,
        /no moon\.mod\.json/,
      ],
      ['invalid JSON', makeZip([{ name: 'moon.mod.json', data: '{"name": ' }]), 400, /not valid JSON/],
      ['bad name', moduleZip({ name: 'company', version: '1.0.0' }), 400, /not a module name/],
      [
        'a space in the name',
        moduleZip({ name: 'company/sp ace', version: '1.0.0' }),
        400,
        /not a module name/,
      ],
      [
        'git~1 in the name',
        moduleZip({ name: 'company/git~1/x', version: '1.0.0' }),
        400,
        /not a module name/,
      ],
      ['a device name', moduleZip({ name: 'company/con', version: '1.0.0' }), 400, /not a module name/],
      ['a trailing dot', moduleZip({ name: 'company/app.', version: '1.0.0' }), 400, /not a module name/],
      ['bad name (climbs)', moduleZip({ name: 'company/../x', version: '1.0.0' }), 400, /not a module name/],
      ['bad version', moduleZip({ name: APP, version: 'latest' }), 400, /not a semver version/],
      [
        'too many entries',
        moduleZip(
          appManifest('9.9.9'),
          Object.fromEntries(
            Array.from({ length: MAX_ENTRIES }, (_, i) => [`f/${String(i).padStart(3, '0')}.txt`, 'x']),
          ),
        ),
        400,
        /entries/,
      ],
      [
        'zip bomb',
        moduleZip(appManifest('9.9.9'), { 'bomb.txt': '0'.repeat(MAX_UNCOMPRESSED + 1) }),
        400,
        /unpacks to more than/,
      ],
      [
        'too large',
        makeZip([
          { name: 'moon.mod.json', data: good },
          { name: 'noise.bin', data: randomBytes(MAX_ARCHIVE + 1024) },
        ]),
        413,
        /larger than/,
      ],
    ];
    for (const [what, zip, status, message] of cases) {
      const reply = await publish(zip, ciToken);
      assert.equal(reply.status, status, `${what}: ${JSON.stringify(reply.body)}`);
      assert.match(String(reply.body.error), message, what);
    }
    assert.equal(await servedHead(), head, 'no bad archive moved the index');
    const stored = await runCliOk(['verify', '--json'], { cwd: registry.root });
    assert.equal((JSON.parse(stored.stdout) as { ok: boolean }).ok, true, 'nothing stray was stored');
  });

  test('a body cut short gets 400 and changes nothing', async () => {
    const head = await servedHead();
    const zip = appZip('0.4.0');
    const boundary = 'cut-short-boundary';
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="token"\r\n\r\n${ciToken}\r\n`),
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.zip"\r\nContent-Type: application/zip\r\n\r\n`,
      ),
      zip.subarray(0, Math.floor(zip.length / 2)),
    ]);
    const { port } = new URL(server.url);
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(port), '127.0.0.1');
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
      });
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
      socket.write(
        `POST /api/v0/publish HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length + 5000}\r\n\r\n`,
      );
      socket.write(body, () => socket.end());
    });
    // The client half-closed mid-body: either a 400 reached it, or the connection was dropped.
    if (answer !== '') assert.match(answer, /^HTTP\/1\.1 400/);
    assert.equal(await servedHead(), head);
    const h = await fetch(`${server.url}/user/${APP}`);
    const listed = ((await h.json()) as { versions: Array<{ version: string }> }).versions.map(
      (v) => v.version,
    );
    assert.ok(!listed.includes('0.4.0'));
  });

  test('hostile uploads: a form that ends inside the file, a huge body with a wrong token, a case twin of a module', async () => {
    // No closing boundary: the parser and the file part both fail. One request used to kill the server.
    const unterminated = await fetch(`${server.url}/api/v0/publish`, {
      method: 'POST',
      headers: { 'Content-Type': 'multipart/form-data; boundary=B' },
      body: '--B\r\nContent-Disposition: form-data; name="file"; filename="m.zip"\r\n\r\nPK',
    });
    assert.equal(unterminated.status, 400);
    await unterminated.body?.cancel();
    assert.equal((await fetch(`${server.url}/health`)).status, 200, 'the server is still up');

    // An unknown bearer token is refused before the body is read: a 1 GB promise costs nothing.
    const { port } = new URL(server.url);
    const started = performance.now();
    const head = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(port), '127.0.0.1');
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
        if (text.includes('\r\n\r\n')) socket.destroy();
      });
      socket.on('close', () => resolve(text));
      socket.write(
        'POST /api/v0/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer mbr_wrong\r\nContent-Type: multipart/form-data; boundary=B\r\nContent-Length: 1000000000\r\n\r\n--B\r\n',
      );
    });
    assert.match(head, /^HTTP\/1\.1 401/);
    assert.ok(performance.now() - started < 5000, 'answered without waiting for the body');

    // company/App would share company/app's index file on macOS and Windows.
    const twin = await publish(moduleZip({ name: 'company/App', version: '5.0.0' }), ciToken);
    assert.equal(twin.status, 409, JSON.stringify(twin.body));
    assert.match(String(twin.body.error), /differs from the served module company\/app only in case/);
  });

  test('concurrent publishes: different versions all land; the same version with other bytes: exactly one wins', async () => {
    const versions = Array.from({ length: 8 }, (_, i) => `1.${i}.0`);
    const replies = await Promise.all(versions.map((v) => publish(appZip(v), ciToken)));
    for (const reply of replies) assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const race = await Promise.all([
      publish(appZip('2.0.0', 'a'), ciToken),
      publish(appZip('2.0.0', 'b'), ciToken),
    ]);
    assert.deepEqual(race.map((r) => r.status).sort(), [200, 409]);
    const home = newHome();
    await update(server.url, home);
    const listed = [...((await readIndex(home)).modules.get(APP)?.keys() ?? [])];
    for (const v of [...versions, '2.0.0']) assert.ok(listed.includes(v), `${v} is served`);
    const winner = race.find((r) => r.status === 200)?.body.checksum;
    assert.equal((await readIndex(home)).modules.get(APP)?.get('2.0.0')?.checksum, winner);
  });

  test('a patched moonbitlang/x overrules the upstream bytes of that version', async () => {
    const upstreamSum = checksumIn(fixture, X, xVersion);
    const patched = moduleZip(
      { name: X, version: xVersion, description: 'patched' },
      { 'PATCHED.md': 'yes\n' },
    );
    const reply = await publish(patched, ciToken);
    assert.equal(reply.status, 200, JSON.stringify(reply.body));
    const home = newHome();
    await update(server.url, home);
    const entry = (await readIndex(home)).modules.get(X)?.get(xVersion);
    assert.equal(entry?.checksum, sha256Hex(patched));
    assert.notEqual(entry?.checksum, upstreamSum);
    assert.deepEqual(await download(server.url, X, xVersion, sha256Hex(patched)), patched);
  });
});

describe('the CLI, verify, dependency confusion and a downstream registry', () => {
  test('publish PATH into the local registry, and --dry-run', async () => {
    const dir = path.join(scratch.path, 'lib-folder');
    await runCliOk(['init', path.join(scratch.path, 'unused')]);
    await import('node:fs/promises').then(async (fs) => {
      await fs.mkdir(path.join(dir, 'src'), { recursive: true });
      await fs.mkdir(path.join(dir, '_build'), { recursive: true });
      await fs.writeFile(
        path.join(dir, 'moon.mod.json'),
        JSON.stringify({ name: 'company/lib', version: '0.1.0' }),
      );
      await fs.writeFile(path.join(dir, 'src', 'lib.mbt'), 'pub fn f() -> Int { 1 }\n');
      await fs.writeFile(path.join(dir, '_build', 'junk.wasm'), 'junk');
    });
    const dry = await runCliOk(['publish', dir, '--dry-run', '--json'], { cwd: registry.root });
    const checked = JSON.parse(dry.stdout) as { result: string; checksum: string; line: string };
    assert.equal(checked.result, 'checked');
    const real = await runCliOk(['publish', dir, '--json'], { cwd: registry.root });
    const published = JSON.parse(real.stdout) as { result: string; checksum: string };
    assert.equal(published.result, 'published');
    const sources = await runCliOk(['source', 'list'], { cwd: registry.root });
    assert.match(
      sources.stdout,
      /^local \[hosted: modules published to this registry\]\nType: hosted\nPriority: 0$/m,
    );
    assert.equal(published.checksum, checked.checksum, 'packing is deterministic');
    const home = newHome();
    await update(server.url, home);
    const bytes = await download(server.url, 'company/lib', '0.1.0', published.checksum);
    assert.ok(!bytes.includes(Buffer.from('junk.wasm')), '_build is not packed');
    // Through the endpoint with --registry and a token from the environment.
    await import('node:fs/promises').then((fs) =>
      fs.writeFile(
        path.join(dir, 'moon.mod.json'),
        JSON.stringify({ name: 'company/lib', version: '0.2.0' }),
      ),
    );
    const remote = await runCli(['publish', dir, '--registry', server.url], {
      cwd: scratch.path,
      env: { MOONBIT_REGISTRY_TOKEN: ciToken },
    });
    assert.equal(remote.code, 0, remote.stderr);
    assert.match(remote.stderr, /published company\/lib@0\.2\.0/);
    const refused = await runCli(['publish', dir, '--registry', server.url, '--token', readerToken], {
      cwd: scratch.path,
    });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /refused the publish \(403\)/);
  });

  test('verify: published archives are checked; a lost one is kept in the index, never dropped', async () => {
    const ok = await runCliOk(['verify', '--json'], { cwd: registry.root });
    assert.equal((JSON.parse(ok.stdout) as { ok: boolean }).ok, true, ok.stdout);
    const lost = path.join(registry.root, 'data', 'packages', 'company', 'app', '0.1.0');
    await rm(lost, { recursive: true, force: true });
    const repair = await runCli(['verify', '--repair', '--json'], { cwd: registry.root });
    const report = JSON.parse(repair.stdout) as { unrepaired: Array<{ version?: string; detail: string }> };
    const left = report.unrepaired.find((p) => p.version === '0.1.0');
    assert.ok(left, repair.stdout);
    assert.match(left.detail, /publish company\/app@0\.1\.0 again/);
    const home = newHome();
    await update(server.url, home);
    assert.ok(
      (await readIndex(home)).modules.get(APP)?.has('0.1.0'),
      'the published version is still listed',
    );
    // index rebuild recomputes the served index from the sources and the published modules.
    await runCliOk(['index', 'rebuild'], { cwd: registry.root });
    await update(server.url, home);
    assert.ok((await readIndex(home)).modules.get(APP)?.has('0.2.0'), 'published versions survive a rebuild');
    // Publishing the same bytes again brings the archive back.
    const again = appZip('0.1.0');
    assert.equal((await publish(again, ciToken)).status, 200);
    assert.deepEqual(await download(server.url, APP, '0.1.0', sha256Hex(again)), again);
  });

  test('[hosted] exclusive: an upstream that starts listing company/* is ignored, with one warning', async () => {
    const cwd = registry.root;
    await runCliOk(['config', 'hosted.exclusive', '["company/*"]'], { cwd });
    await fixture.addVersion('company/evil', '6.6.6');
    const run = await runCliOk(['mirror', '--full', '-s', 'up', '--json'], { cwd, timeoutMs: 120_000 });
    const summary = JSON.parse(run.stdout) as { warnings: string[] };
    const warned = summary.warnings.filter((w) => w.includes('company/evil'));
    assert.equal(warned.length, 1, summary.warnings.join('\n'));
    assert.match(
      warned[0] as string,
      /source "up" lists company\/evil, which only published modules may provide/,
    );
    const home = newHome();
    await update(server.url, home);
    assert.equal((await readIndex(home)).modules.has('company/evil'), false);
  });

  test('yank and deprecate: over HTTP with a publish token and with the CLI; lines marked, archives kept, the web UI shows both', async () => {
    const mark = (kind: string, body: Record<string, unknown>, token: string) =>
      fetch(`${server.url}/api/v0/${kind}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    const refused = await mark('yank', { module: APP, version: '1.1.0' }, readerToken);
    assert.equal(refused.status, 403);
    const yanked = await mark('yank', { module: APP, version: '1.1.0', reason: 'broken build' }, ciToken);
    assert.equal(yanked.status, 200, await yanked.clone().text());
    assert.deepEqual(((await yanked.json()) as { versions: string[] }).versions, ['1.1.0']);
    await runCliOk(['deprecate', APP, 'use company/app2'], { cwd: registry.root });
    // An upstream version can be yanked here too: the same bytes, marked.
    await runCliOk(['yank', `${X}@${xVersion}`, '--reason', 'local policy'], { cwd: registry.root });

    const home = newHome();
    await update(server.url, home);
    const index = await readIndex(home);
    const line = index.modules.get(APP)?.get('1.1.0');
    assert.equal(line?.fields.yanked, true);
    assert.equal(line?.fields.yanked_reason, 'broken build');
    for (const [version, entry] of index.modules.get(APP) ?? []) {
      assert.equal(entry.fields.deprecated, 'use company/app2', `${version} is deprecated`);
    }
    assert.equal(index.modules.get(X)?.get(xVersion)?.fields.yanked, true);
    // Yanked, not gone: what locked it still builds.
    await download(server.url, APP, '1.1.0', line?.checksum ?? '');
    const page = await (
      await fetch(`${server.url}/user/${APP}`, { headers: { Accept: 'text/html' } })
    ).text();
    assert.match(page, /yanked/i);
    assert.match(page, /broken build/);
    assert.match(page, /use company\/app2/);

    await runCliOk(['unyank', `${X}@${xVersion}`], { cwd: registry.root });
    await update(server.url, home);
    assert.equal((await readIndex(home)).modules.get(X)?.get(xVersion)?.fields.yanked, undefined);
  });

  test('a second registry mirrors the first as its internal source', async () => {
    const downstream = await initRegistryWithSource('internal', server.url, ['--type', 'moonbit-registry']);
    try {
      await runCliOk(['mirror', 'company/*'], { cwd: downstream.root, timeoutMs: 120_000 });
      const second = await startServe(downstream.root);
      try {
        const home = newHome();
        await update(second.url, home);
        const installed = await install(second.url, home, { [APP]: '0.2.0' });
        assert.equal(installed.get(APP)?.version, '0.2.0');
        assert.ok(installed.has(X), 'its public dependency came along');
        // mirror skips a yanked version nobody depends on.
        assert.equal((await readIndex(home)).modules.get(APP)?.has('1.1.0'), false);
      } finally {
        await second.stop();
      }
    } finally {
      await downstream.remove();
    }
  });
});
