/**
 * Private registries: `[server.access]` in credentials and allowlist modes, tokens made by
 * `token add` (stored hashed), what a real git and a reqwest-like client send for
 * `http://name:token@host`, SIGHUP reloads, the admin token kept apart, and HTTPS with
 * `--tls-cert/--tls-key` and `[server] base_url`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { Agent, fetch as undiciFetch } from 'undici';
import { errorLines, type RunningServer, runCli, runCliOk, startServe } from '../support/cli.js';
import { type MirroredRegistry, mirroredRegistry } from '../support/mirrored-registry.js';
import { archiveUrl, install, latest, readIndex, update } from '../support/moon-client.js';
import { waitFor } from '../support/test-registry.js';

const MODULE = 'moonbitlang/regexp';

let setup: MirroredRegistry;
let registry: { root: string };
let scratch: { path: string };

before(async () => {
  setup = await mirroredRegistry([MODULE], 'mr-access-');
  registry = { root: setup.root };
  scratch = { path: setup.scratch };
});

after(async () => {
  await setup?.cleanup();
});

function cli(args: string[]) {
  return runCliOk(args, { cwd: registry.root });
}

function withUser(url: string, user: string, password?: string): string {
  const parsed = new URL(url);
  parsed.username = user;
  if (password !== undefined) parsed.password = password;
  return parsed.toString().replace(/\/$/, '');
}

/** The JSON access-log lines serve printed so far. */
function accessLog(
  server: RunningServer,
): Array<{ url: string; status: number; user?: string; client: string }> {
  return server
    .output()
    .split('\n')
    .filter((line) => line.includes('"msg":"request"'))
    .map((line) => JSON.parse(line) as { url: string; status: number; user?: string; client: string });
}

async function sighup(server: RunningServer, done: RegExp): Promise<void> {
  const before = server.output().length;
  server.process.kill('SIGHUP');
  await waitFor(() => done.test(server.output().slice(before)), 'the SIGHUP reload');
}

describe('credentials mode', () => {
  let server: RunningServer;
  let ciToken: string;

  before(async () => {
    ciToken = (await cli(['token', 'add', 'ci'])).stdout.trim();
    await cli(['config', 'server.access.mode', 'credentials']);
    server = await startServe(registry.root);
  });
  after(async () => {
    await server?.stop();
    await cli(['config', 'server.access.mode', 'open']);
  });

  test('token add prints the token once; registry.toml and token list keep only its hash', async () => {
    assert.match(ciToken, /^mbr_[A-Za-z0-9_-]{43}$/);
    const toml = await readFile(path.join(registry.root, 'registry.toml'), 'utf8');
    assert.ok(!toml.includes(ciToken), 'the token itself is not written');
    assert.match(toml, /name = "ci", sha256 = "[0-9a-f]{64}"/);
    const list = await cli(['token', 'list']);
    assert.match(list.stdout, /^access mode: credentials$/m);
    assert.match(list.stdout, /^ci {2}created \d{4}-/m);
    assert.ok(!list.stdout.includes(ciToken));
    const again = await runCli(['token', 'add', 'ci'], { cwd: registry.root });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /a token named "ci" already exists/);
  });

  test('without credentials: 401 with a Basic challenge everywhere but a bare /health', async () => {
    for (const route of ['/', '/git/index/info/refs?service=git-upload-pack', `/user/${MODULE}`]) {
      const res = await fetch(`${server.url}${route}`);
      assert.equal(res.status, 401, route);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="e2e"/);
      await res.body?.cancel();
    }
    const archive = await fetch(archiveUrl(server.url, MODULE, '0.1.0'));
    assert.equal(archive.status, 401);
    await archive.body?.cancel();
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' }, 'no sources, errors or commits for strangers');
    const wrong = await fetch(`${server.url}/`, { headers: { Authorization: 'Bearer mbr_not-a-token' } });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    await assert.rejects(
      update(server.url, path.join(scratch.path, 'anonymous')),
      /401|Authentication failed|could not read Username/,
    );
  });

  test('git with http://ci:TOKEN@host: 401 first, then Basic after the challenge; moon-like install works', async () => {
    const home = path.join(scratch.path, 'home-ci');
    const registryUrl = withUser(server.url, 'ci', ciToken);
    const start = accessLog(server).length;
    assert.equal((await update(registryUrl, home)).action, 'clone');
    await waitFor(() => accessLog(server).length >= start + 3, 'the access log');
    const gitLines = accessLog(server)
      .slice(start)
      .filter((line) => line.url.startsWith('/git/'));
    assert.equal(gitLines[0]?.status, 401, 'git asks without credentials first');
    assert.equal(gitLines[0]?.user, undefined);
    // libcurl (CURLAUTH_ANY) probes without credentials again on a new connection before it
    // sends Basic: a 401 with no user may repeat, but once in, every request is ci's.
    const firstIn = gitLines.findIndex((line) => line.status === 200);
    assert.ok(firstIn > 0, JSON.stringify(gitLines));
    assert.ok(
      gitLines.slice(0, firstIn).every((line) => line.status === 401 && line.user === undefined),
      JSON.stringify(gitLines),
    );
    assert.ok(
      gitLines.slice(firstIn).every((line) => line.status === 200 && line.user === 'ci'),
      JSON.stringify(gitLines),
    );
    // Archives: the reqwest-like client sends Basic from the URL's user info on the first request.
    const version = latest(await readIndex(home), MODULE) as string;
    // The update's last request (symbols.zip) is logged when its response closes, which may come
    // after the client moved on: wait for it, so it is not taken for an archive request below.
    await waitFor(
      () =>
        accessLog(server)
          .slice(start)
          .some((line) => line.url === '/symbols.zip'),
      "the update's symbols request in the access log",
    );
    const before = accessLog(server).length;
    const installed = await install(registryUrl, home, { [MODULE]: version });
    assert.ok(installed.get(MODULE));
    // Each line is logged when its response closes, which may come just after the client is done.
    await waitFor(() => accessLog(server).length >= before + installed.size, 'the access log');
    const archiveLines = accessLog(server).slice(before);
    assert.ok(
      archiveLines.every((line) => line.status === 200 && line.user === 'ci'),
      JSON.stringify(archiveLines),
    );
    assert.ok(!server.output().includes(ciToken), 'the token never reaches the log');
  });

  test('the token alone works as a bearer token and as a bare user name (https://TOKEN@host)', async () => {
    const bearer = await fetch(`${server.url}/user/${MODULE}`, {
      headers: { Authorization: `Bearer ${ciToken}` },
    });
    assert.equal(bearer.status, 200);
    await bearer.body?.cancel();
    const home = path.join(scratch.path, 'home-bare');
    // git asks for the missing password; the test's askpass (`true`) answers with an empty one.
    await update(withUser(server.url, ciToken), home);
  });

  test('token remove and token add take effect on SIGHUP, without a restart', async () => {
    const aliceToken = (await cli(['token', 'add', 'alice'])).stdout.trim();
    const asAlice = () =>
      fetch(`${server.url}/`, { headers: { Authorization: `Bearer ${aliceToken}` } }).then(async (res) => {
        await res.body?.cancel();
        return res.status;
      });
    assert.equal(await asAlice(), 401, 'not before the reload');
    await sighup(server, /access rules reloaded/);
    assert.equal(await asAlice(), 200);
    await cli(['token', 'remove', 'alice']);
    await sighup(server, /access rules reloaded/);
    assert.equal(await asAlice(), 401, 'revoked');
    // A broken registry.toml keeps the rules in force.
    const config = path.join(registry.root, 'registry.toml');
    const text = await readFile(config, 'utf8');
    await writeFile(config, `${text}\n[server\n`);
    await sighup(
      server,
      /error: SIGHUP: registry\.toml could not be read, the access rules in force stay: .*registry\.toml/,
    );
    await writeFile(config, text);
    const ci = await fetch(`${server.url}/`, { headers: { Authorization: `Bearer ${ciToken}` } });
    assert.equal(ci.status, 200);
    await ci.body?.cancel();
  });

  test('a read token is no admin token; the admin token is its own, stored hashed', async () => {
    const adminToken = (await cli(['token', 'add', '--admin'])).stdout.trim();
    await server.stop();
    server = await startServe(registry.root);
    const post = (token: string) =>
      fetch(`${server.url}/admin/sync`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
    const asReader = await post(ciToken);
    assert.equal(asReader.status, 401);
    await asReader.body?.cancel();
    const asAdmin = await post(adminToken);
    assert.equal(asAdmin.status, 200, await asAdmin.clone().text());
    await asAdmin.body?.cancel();
    const toml = await readFile(path.join(registry.root, 'registry.toml'), 'utf8');
    assert.ok(!toml.includes(adminToken));
    assert.match(toml, /^admin_token_sha256 = "[0-9a-f]{64}"/m);
  });

  test('a registry name no header can carry: the 401 still goes out and the server lives', async () => {
    const config = path.join(registry.root, 'registry.toml');
    const text = await readFile(config, 'utf8');
    try {
      await writeFile(config, text.replace(/^name = "e2e"$/m, 'name = "Reg 私有 \\"q\\" \\u007f"'));
      await server.stop();
      server = await startServe(registry.root);
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${server.url}/`);
        assert.equal(res.status, 401);
        assert.equal(res.headers.get('www-authenticate'), 'Basic realm="Reg  q", charset="UTF-8"');
        await res.body?.cancel();
      }
      assert.equal(server.process.exitCode, null);
    } finally {
      await writeFile(config, text);
    }
  });

  test('revoking the last token locks everyone out at SIGHUP (fail closed), and says so', async () => {
    const before = await fetch(`${server.url}/`, { headers: { Authorization: `Bearer ${ciToken}` } });
    assert.equal(before.status, 200);
    await before.body?.cancel();
    const removed = await cli(['token', 'remove', 'ci']);
    assert.match(removed.stderr, /warning: that was the last token/);
    await sighup(server, /no token left: every request is refused/);
    const after = await fetch(`${server.url}/`, { headers: { Authorization: `Bearer ${ciToken}` } });
    assert.equal(after.status, 401, 'the revoked token no longer reads');
    await after.body?.cancel();
  });
});

describe('allowlist mode', () => {
  let original: string;
  before(async () => {
    original = await readFile(path.join(registry.root, 'registry.toml'), 'utf8');
  });
  after(async () => {
    await writeFile(path.join(registry.root, 'registry.toml'), original);
  });

  async function serveWith(allow: string, trusted: string): Promise<RunningServer> {
    const config = path.join(registry.root, 'registry.toml');
    const text = (await readFile(config, 'utf8'))
      .replace(/^mode = "\w+"/m, 'mode = "allowlist"')
      .replace(/^(# )?allow = .*$/m, `allow = ${allow}`)
      .replace(/^trusted_proxies = .*\n/m, '')
      .replace(/^\[server\.access\]$/m, `trusted_proxies = ${trusted}\n\n[server.access]`);
    await writeFile(config, text);
    return startServe(registry.root);
  }

  test('a client outside the list gets 403 (git too); inside it, everything works', async () => {
    let server = await serveWith('["10.0.0.0/8"]', '[]');
    try {
      const res = await fetch(`${server.url}/`);
      assert.equal(res.status, 403);
      assert.match(((await res.json()) as { error: string }).error, /does not serve your address/);
      const health = await fetch(`${server.url}/health`);
      assert.deepEqual(await health.json(), { status: 'ok' });
      await assert.rejects(update(server.url, path.join(scratch.path, 'outside')), /403/);
      // X-Forwarded-For is ignored from a peer that is not a trusted proxy.
      const forged = await fetch(`${server.url}/`, { headers: { 'X-Forwarded-For': '10.1.2.3' } });
      assert.equal(forged.status, 403);
      await forged.body?.cancel();
    } finally {
      await server.stop();
    }
    server = await serveWith('["127.0.0.0/8", "::1"]', '[]');
    try {
      await update(server.url, path.join(scratch.path, 'inside'));
    } finally {
      await server.stop();
    }
  });

  test('behind a trusted proxy, the nearest untrusted X-Forwarded-For address counts', async () => {
    const server = await serveWith('["10.0.0.0/8"]', '["127.0.0.1"]');
    try {
      const status = async (xff: string) => {
        const res = await fetch(`${server.url}/`, { headers: { 'X-Forwarded-For': xff } });
        await res.body?.cancel();
        return res.status;
      };
      assert.equal(await status('10.1.2.3'), 200);
      // The client wrote the left entry itself; the proxy appended the address it saw.
      assert.equal(await status('10.9.9.9, 192.168.1.20'), 403);
      assert.equal(await status('192.168.1.20, 10.1.2.3, 127.0.0.1'), 200);
      assert.equal(await status('not-an-address'), 403);
      await waitFor(() => accessLog(server).length >= 4, 'the access log');
      const log = accessLog(server);
      assert.deepEqual(
        log.slice(-4).map((line) => line.client),
        ['10.1.2.3', '192.168.1.20', '10.1.2.3', 'not-an-address'],
      );
    } finally {
      await server.stop();
    }
  });

  test('configuration mistakes are refused with the line', async () => {
    const config = path.join(registry.root, 'registry.toml');
    const text = await readFile(config, 'utf8');
    try {
      await writeFile(config, text.replace(/^allow = .*$/m, 'allow = ["10.0.0.0/33"]'));
      const bad = await runCli(['serve', '--port', '0'], { cwd: registry.root });
      assert.equal(bad.code, 1);
      assert.match(
        errorLines(bad.stderr)[0] ?? '',
        /registry\.toml line \d+: server\.access\.allow\[0\]: .*CIDR/,
      );
      await writeFile(
        config,
        text.replace(/^mode = "\w+"/m, 'mode = "credentials"').replace(/^tokens = .*\n/m, ''),
      );
      const noTokens = await runCli(['serve', '--port', '0'], { cwd: registry.root });
      assert.equal(noTokens.code, 1);
      assert.match(noTokens.stderr, /mode is "credentials" but no token exists/);
      assert.match(noTokens.stderr, /hint: create one: moonbit-registry token add/);
    } finally {
      await writeFile(config, text);
    }
  });
});

describe('HTTPS', () => {
  const exec = promisify(execFile);
  let certs: string;

  async function makeCert(name: string): Promise<{ cert: string; key: string }> {
    const cert = path.join(certs, `${name}.pem`);
    const key = path.join(certs, `${name}.key`);
    await exec('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ]);
    return { cert, key };
  }

  const hasOpenssl = () =>
    exec('openssl', ['version']).then(
      () => true,
      () => false,
    );

  before(async () => {
    certs = path.join(scratch.path, 'certs');
    await mkdir(certs);
  });

  test('serve --tls-cert/--tls-key: git and archive downloads over HTTPS; base_url in the links; SIGHUP swaps the certificate', async (t) => {
    if (!(await hasOpenssl())) {
      t.skip('openssl is not installed');
      return;
    }
    const first = await makeCert('first');
    const original = await readFile(path.join(registry.root, 'registry.toml'), 'utf8');
    await cli(['config', 'server.base_url', 'https://registry.example.test/']);
    const server = await startServe(registry.root, ['--tls-cert', first.cert, '--tls-key', first.key]);
    try {
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      await waitFor(() => /clients: /.test(server.output()), 'the start-up notice');
      assert.match(
        server.output(),
        /clients: MOONCAKES_REGISTRY=https:\/\/registry\.example\.test moon update/,
      );
      const home = path.join(scratch.path, 'home-tls');
      await update(server.url, home, { env: { GIT_SSL_CAINFO: first.cert } });
      const version = latest(await readIndex(home), MODULE) as string;
      const ca = await readFile(first.cert);
      const installed = await install(server.url, home, { [MODULE]: version }, { ca });
      assert.ok(installed.get(MODULE));
      const root = await undiciFetch(`${server.url}/`, { dispatcher: new Agent({ connect: { ca } }) });
      const body = (await root.json()) as { url: string; usage: string };
      assert.equal(body.url, 'https://registry.example.test');
      assert.equal(body.usage, 'MOONCAKES_REGISTRY=https://registry.example.test moon update');
      // A client that offers HTTP/2 in TLS (curl, reqwest with http2) is answered in HTTP/1.1.
      const offered = await exec('curl', [
        '-s',
        '--http2',
        '--cacert',
        first.cert,
        '-o',
        '/dev/null',
        '-w',
        '%{http_version} %{http_code}',
        `${server.url}/health`,
      ]);
      assert.equal(offered.stdout, '1.1 200');
      // Without the CA, a client refuses the server: the certificate is really in use.
      await assert.rejects(update(server.url, path.join(scratch.path, 'home-untrusted')), /SSL|certificate/i);

      // A renewed certificate at the same paths is used by new connections after SIGHUP.
      const second = await makeCert('second');
      await copyFile(second.cert, first.cert);
      await copyFile(second.key, first.key);
      await sighup(server, /TLS certificate reloaded/);
      const secondCa = await readFile(second.cert);
      const renewed = await undiciFetch(`${server.url}/health`, {
        dispatcher: new Agent({ connect: { ca: secondCa } }),
      });
      assert.equal(renewed.status, 200);
      await renewed.body?.cancel();
      await assert.rejects(
        undiciFetch(`${server.url}/health`, { dispatcher: new Agent({ connect: { ca } }) }),
        'the old certificate is no longer served',
      );
    } finally {
      await server.stop();
      await writeFile(path.join(registry.root, 'registry.toml'), original);
    }
  });

  test('a client stuck before the TLS handshake does not hold up shutdown', async (t) => {
    if (!(await hasOpenssl())) {
      t.skip('openssl is not installed');
      return;
    }
    const { cert: certFile, key: keyFile } = await makeCert('stuck');
    const config = path.join(registry.root, 'registry.toml');
    const original = await readFile(config, 'utf8');
    await cli(['config', 'server.shutdown_timeout', '1s']);
    const server = await startServe(registry.root, ['--tls-cert', certFile, '--tls-key', keyFile]);
    const { port } = new URL(server.url);
    const silent = net.connect(Number(port), '127.0.0.1');
    silent.on('error', () => undefined);
    try {
      await new Promise((resolve) => silent.once('connect', resolve));
      const started = performance.now();
      await server.stop();
      const seconds = (performance.now() - started) / 1000;
      assert.equal(server.process.exitCode, 0);
      assert.ok(
        seconds < 8,
        `exited ${seconds.toFixed(1)} s after SIGTERM (Node's own handshake timeout is 120 s)`,
      );
    } finally {
      silent.destroy();
      await writeFile(config, original);
    }
  });

  test('a missing key file or a lone --tls-cert is a clear error', async () => {
    const missing = await runCli(
      [
        'serve',
        '--port',
        '0',
        '--tls-cert',
        path.join(certs, 'first.pem'),
        '--tls-key',
        path.join(certs, 'nope.key'),
      ],
      { cwd: registry.root },
    );
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read the TLS key .*nope\.key/);
    const lone = await runCli(['serve', '--port', '0', '--tls-cert', path.join(certs, 'first.pem')], {
      cwd: registry.root,
    });
    assert.equal(lone.code, 1);
    assert.match(lone.stderr, /--tls-cert and --tls-key go together/);
  });
});
