/**
 * Several upstream registries merged by priority (seeds multiple-sources.txt and
 * multiple-upstreams-priority.txt), checked the way `moon` sees the result:
 *
 * - "mooncakes" (priority 100, default): the whole real index, no auth.
 * - "partner" (priority 50, bearer `${PARTNER_TOKEN}`): patched builds of a few public
 *   module versions (other bytes, so another checksum), a few rebuilds with the very same bytes
 *   as mooncakes, and its own partner-org/* modules.
 * - "internal" (priority 25, basic `${INTERNAL_USER}`/`${INTERNAL_PASS}`): company/* modules that
 *   depend on mooncakes modules.
 *
 * Fixture archives are `makeArchive(module, version, marker)`, the marker being the flavor. To
 * get partner versions with exactly mooncakes' bytes, partner uses the same (default) flavor;
 * its patched versions are `overrideVersions`, whose marker is `default:override`, so their
 * bytes and checksums differ from mooncakes'.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type JsonSummary,
  parseJsonSummary,
  type RunningServer,
  startServe,
  tempDir,
} from '../support/cli.js';
import { FakeUpstream, type UpstreamAuth } from '../support/fake-upstream.js';
import { buildFixture, bytesIn, checksumIn, type Fixture, sha256Hex } from '../support/fixture.js';
import { download, install, latest, readIndex, resolve, update } from '../support/moon-client.js';
import {
  archiveKeys,
  CliSession,
  filesContaining,
  getJson,
  gitHead,
  initWithLocalMooncakes,
  insertAfterSource,
  isAncestor,
  isGitRequest,
  listFiles,
  requestsSince,
} from '../support/multi-upstream.js';

const PARTNER_TOKEN = `ptok-${randomBytes(16).toString('hex')}`;
const WRONG_TOKEN = `wrongtok-${randomBytes(16).toString('hex')}`;
const INTERNAL_USER = 'ci-mirror';
const INTERNAL_PASS = `ipass-${randomBytes(16).toString('hex')}`;
const INTERNAL_BASIC = Buffer.from(`${INTERNAL_USER}:${INTERNAL_PASS}`).toString('base64');
const WRONG_BASIC = Buffer.from(`${INTERNAL_USER}:${WRONG_TOKEN}`).toString('base64');
/** Nothing of these may ever be printed or written under data/. */
const SECRETS = [PARTNER_TOKEN, WRONG_TOKEN, INTERNAL_PASS, INTERNAL_BASIC, WRONG_BASIC];
const ENV = { PARTNER_TOKEN, INTERNAL_USER, INTERNAL_PASS };

const X = 'moonbitlang/x';
/** Patched by partner (other bytes): partner's line and archive win. */
const X_PATCHED = '0.4.40';
/** Rebuilt by partner with mooncakes' very bytes. */
const X_SAME = '0.4.38';
/** Only mooncakes has it. */
const X_PUBLIC = '0.4.37';
const ABORT = 'moonbitlang/dummy_abort';
const PROTOBUF = 'moonbitlang/protobuf';

interface VersionInfo {
  version: string;
  checksum: string;
  source: string | null;
}

interface ModuleInfo {
  module: string;
  versions: VersionInfo[];
}

/**
 * A real-world URL may hold "401" or "403" (a port such as 40123, a path such as /v403/): that
 * must not turn a plain outage into a credentials error. Uses 40100-40199 when one is free.
 */
async function startOnPortWith401(fixture: Fixture, auth: UpstreamAuth): Promise<FakeUpstream> {
  for (let port = 40100; port < 40200; port++) {
    try {
      return await FakeUpstream.start({ fixture, auth, port });
    } catch {
      // taken: try the next one
    }
  }
  return FakeUpstream.start({ fixture, auth });
}

describe('multiple sources merged by priority (mooncakes 100, partner 50, internal 25)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let mooncakesFx: Fixture;
  let partnerFx: Fixture;
  let internalFx: Fixture;
  let mooncakes: FakeUpstream;
  let partner: FakeUpstream;
  let internal: FakeUpstream;
  let root: string;
  let moonHome: string;
  let cli: CliSession;
  /** Every CLI session of this file, for the leak checks. */
  const sessions: CliSession[] = [];
  let server: RunningServer;
  let indexGit: string;
  const heads: string[] = [];
  let firstUpdateDone = false;

  const upstreams = () => [mooncakes, partner, internal];
  const marks = () => upstreams().map((u) => u.requests.length);

  /** The served head moved forward (or stayed): the previous one is its ancestor. */
  async function recordHead(step: string): Promise<string> {
    const head = await gitHead(indexGit);
    const previous = heads.at(-1);
    if (previous !== undefined) {
      assert.ok(
        await isAncestor(indexGit, previous, head),
        `${step}: served head ${head} does not descend from ${previous}`,
      );
    }
    heads.push(head);
    return head;
  }

  /** `moon update` against the served registry, then read the index like moon does. */
  async function servedIndex() {
    const result = await update(server.url, moonHome);
    if (firstUpdateDone) {
      assert.equal(result.action, 'pull', `moon update had to re-clone: ${result.pullError ?? ''}`);
    }
    firstUpdateDone = true;
    return readIndex(moonHome);
  }

  async function moduleInfo(module: string): Promise<ModuleInfo> {
    const res = await getJson(`${server.url}/user/${module}`);
    assert.equal(res.status, 200, `GET /user/${module}: ${res.text}`);
    return res.body as ModuleInfo;
  }

  async function mirrorJson(args: string[]): Promise<JsonSummary> {
    return parseJsonSummary(await cli.ok(['mirror', '--json', ...args]));
  }

  /** Every archive under data/packages is named by the sha256 of its bytes. */
  async function assertStoreVerified(): Promise<void> {
    for (const file of await listFiles(path.join(root, 'data', 'packages'))) {
      const name = path.basename(file, '.zip');
      assert.equal(sha256Hex(await fs.readFile(file)), name, `${file} does not hold the bytes its name says`);
    }
  }

  async function storedChecksums(module: string, version: string): Promise<string[]> {
    const dir = path.join(root, 'data', 'packages', ...module.split('/'), version);
    return (await listFiles(dir)).map((f) => path.basename(f, '.zip'));
  }

  before(async () => {
    [mooncakesFx, partnerFx, internalFx] = await Promise.all([
      buildFixture(),
      buildFixture({
        filter: () => false,
        extraModules: [
          { module: X, version: X_SAME, fields: { description: 'partner rebuild (same bytes)' } },
          { module: X, version: X_PATCHED, fields: { description: 'partner patched build' } },
          { module: ABORT, version: '0.1.0' },
          { module: ABORT, version: '0.2.0' },
          { module: PROTOBUF, version: '0.1.0' },
          { module: PROTOBUF, version: '0.1.1' },
          { module: 'partner-org/util', version: '0.1.0' },
          {
            module: 'partner-org/tool',
            version: '0.1.0',
            deps: { [X]: X_PATCHED, 'partner-org/util': '0.1.0' },
          },
          {
            module: 'partner-org/tool',
            version: '0.2.0',
            deps: { [X]: X_PATCHED, 'partner-org/util': '0.1.0' },
          },
        ],
        overrideVersions: [
          { module: X, version: X_PATCHED },
          { module: ABORT, version: '0.2.0' },
          { module: PROTOBUF, version: '0.1.1' },
        ],
      }),
      buildFixture({
        flavor: 'internal',
        filter: () => false,
        extraModules: [
          { module: 'company/lib', version: '0.1.0', deps: { 'moonbitlang/regexp': '0.3.5' } },
          {
            module: 'company/app',
            version: '1.0.0',
            deps: { [X]: X_PUBLIC, 'moonbitlang/parser': '0.1.15', 'company/lib': '0.1.0' },
          },
        ],
      }),
    ]);
    for (const fx of [mooncakesFx, partnerFx, internalFx]) cleanups.push(() => fx.cleanup());
    mooncakes = await FakeUpstream.start({ fixture: mooncakesFx });
    cleanups.push(() => mooncakes.close());
    partner = await startOnPortWith401(partnerFx, { type: 'bearer', token: PARTNER_TOKEN });
    cleanups.push(() => partner.close());
    internal = await FakeUpstream.start({
      fixture: internalFx,
      auth: { type: 'basic', username: INTERNAL_USER, password: INTERNAL_PASS },
    });
    cleanups.push(() => internal.close());

    const dir = await tempDir('mr-multi-');
    cleanups.push(dir.remove);
    root = path.join(dir.path, 'registry');
    moonHome = path.join(dir.path, 'moon-home');
    indexGit = path.join(root, 'data', 'index');
    cli = new CliSession(root, ENV);
    sessions.push(cli);
    await initWithLocalMooncakes(cli, root, dir.path, 'multi', mooncakes);
    for (const [name, upstream, priority] of [
      ['partner', partner, '50'],
      ['internal', internal, '25'],
    ] as const) {
      await cli.ok([
        'source',
        'add',
        name,
        '--url',
        upstream.url,
        '--index-url',
        upstream.indexUrl,
        '--priority',
        priority,
      ]);
    }

    // Credentials can only be written by hand: a [sources.auth] table after each source.
    const configFile = path.join(root, 'registry.toml');
    let toml = await fs.readFile(configFile, 'utf8');
    toml = insertAfterSource(
      toml,
      'partner',
      '[sources.auth]  # partner token comes from the environment\ntype = "bearer"\ntoken = "${PARTNER_TOKEN}"\n',
    );
    toml = insertAfterSource(
      toml,
      'internal',
      '[sources.auth]\n# basic auth for the company registry\ntype = "basic"\nusername = "${INTERNAL_USER}"\npassword = "${INTERNAL_PASS}"\n',
    );
    await fs.writeFile(configFile, toml);

    server = await startServe(root);
    cleanups.push(() => server.stop());
    await recordHead('init');
  });

  after(async () => {
    const errors: unknown[] = [];
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed');
  });

  it('1. source list shows the three sources in the documented layout, without credentials', async () => {
    const expected = [
      'Configured sources:',
      'mooncakes (default) [enabled]',
      'Type: mooncakes',
      `URL: ${mooncakes.url}`,
      `Index: ${mooncakes.indexUrl} (git)`,
      'Priority: 100',
      'partner [enabled]',
      'Type: custom',
      `URL: ${partner.url}`,
      `Index: ${partner.indexUrl} (git)`,
      'Priority: 50',
      'internal [enabled]',
      'Type: custom',
      `URL: ${internal.url}`,
      `Index: ${internal.indexUrl} (git)`,
      'Priority: 25',
    ].join('\n');
    const list = await cli.ok(['source', 'list']);
    assert.equal(list.stdout.trim(), expected);
    for (const secret of SECRETS) assert.ok(!list.stdout.includes(secret) && !list.stderr.includes(secret));
    assert.doesNotMatch(list.stdout, /Bearer|Basic|token|password/i);
    // Credentials are resolved only when a request is made: listing works without them.
    const bare = await cli.ok(['source', 'list'], {
      env: { PARTNER_TOKEN: undefined, INTERNAL_USER: undefined, INTERNAL_PASS: undefined },
    });
    assert.equal(bare.stdout.trim(), expected);
  });

  it('mirrors moonbitlang/x (default source), partner-org/* (-s partner) and company/* (-s internal)', async () => {
    const x = await mirrorJson([X]);
    assert.equal(x.failed, 0, JSON.stringify(x.failures));
    // The two versions partner also has are fetched from partner (it wins); the rest from mooncakes.
    assert.equal(x.sources.partner?.downloaded, 2, JSON.stringify(x.sources));
    assert.equal(x.sources.mooncakes?.downloaded, 41, JSON.stringify(x.sources));
    assert.equal(x.sources.internal?.downloaded, 0, JSON.stringify(x.sources));
    assert.deepEqual(
      archiveKeys(partner.requests).sort(),
      [`${X}@${X_SAME}`, `${X}@${X_PATCHED}`],
      'partner was asked for exactly the versions it wins',
    );
    assert.ok(!archiveKeys(mooncakes.requests).includes(`${X}@${X_PATCHED}`));
    await recordHead('mirror x');

    const p = await mirrorJson(['-s', 'partner', 'partner-org/*']);
    assert.equal(p.failed, 0, JSON.stringify(p.failures));
    assert.equal(p.sources.partner?.downloaded, 3, JSON.stringify(p.sources));
    await recordHead('mirror partner-org');

    const c = await mirrorJson(['-s', 'internal', 'company/*']);
    assert.equal(c.failed, 0, JSON.stringify(c.failures));
    assert.equal(c.sources.internal?.downloaded, 2, JSON.stringify(c.sources));
    // moonbitlang/parser@0.1.15 and moonbitlang/regexp@0.3.5 (x@0.4.37 is already here).
    assert.equal(c.sources.mooncakes?.downloaded, 2, JSON.stringify(c.sources));
    await recordHead('mirror company');
    await assertStoreVerified();
  });

  it("2. the overruling version (partner's moonbitlang/x@0.4.40) is served with partner's checksum and bytes", async () => {
    const index = await servedIndex();
    const partnerSum = checksumIn(partnerFx, X, X_PATCHED);
    const publicSum = checksumIn(mooncakesFx, X, X_PATCHED);
    assert.notEqual(partnerSum, publicSum, 'fixture: the patched build must differ');
    const entry = index.modules.get(X)?.get(X_PATCHED);
    assert.equal(entry?.checksum, partnerSum);
    assert.equal(entry?.fields.description, 'partner patched build', "partner's whole line is served");
    const bytes = await download(server.url, X, X_PATCHED, partnerSum);
    assert.ok(bytes.equals(bytesIn(partnerFx, X, X_PATCHED)));
    assert.ok(!bytes.equals(bytesIn(mooncakesFx, X, X_PATCHED)));
    // The same-bytes rebuild: partner's line, whose checksum is mooncakes' too.
    assert.equal(index.modules.get(X)?.get(X_SAME)?.checksum, checksumIn(mooncakesFx, X, X_SAME));
    assert.equal(latest(index, X), X_PATCHED);

    const info = await moduleInfo(X);
    assert.equal(info.module, X);
    assert.equal(info.versions.length, mooncakesFx.modules.get(X)?.size);
    for (const v of info.versions) {
      const expectSource = v.version === X_PATCHED || v.version === X_SAME ? 'partner' : 'mooncakes';
      assert.equal(v.source, expectSource, `${X}@${v.version}`);
      assert.equal(v.checksum, index.modules.get(X)?.get(v.version)?.checksum, `${X}@${v.version}`);
    }
  });

  it('3. versions only a lower-priority source has are served from it', async () => {
    const index = await servedIndex();
    const publicVersions = [...(mooncakesFx.modules.get(X)?.keys() ?? [])].filter(
      (v) => v !== X_PATCHED && v !== X_SAME,
    );
    assert.equal(publicVersions.length, 41);
    for (const version of publicVersions) {
      assert.equal(
        index.modules.get(X)?.get(version)?.checksum,
        checksumIn(mooncakesFx, X, version),
        version,
      );
    }
    const bytes = await download(server.url, X, X_PUBLIC, checksumIn(mooncakesFx, X, X_PUBLIC));
    assert.ok(bytes.equals(bytesIn(mooncakesFx, X, X_PUBLIC)));
    // partner-org/* exists only in partner (priority 50) and is served from it.
    const tool = await moduleInfo('partner-org/tool');
    assert.deepEqual(
      tool.versions.map((v) => [v.version, v.source, v.checksum]),
      ['0.1.0', '0.2.0'].map((v) => [v, 'partner', checksumIn(partnerFx, 'partner-org/tool', v)]),
    );
    const installed = await install(server.url, moonHome, { 'partner-org/tool': '0.2.0' });
    assert.deepEqual(
      [...installed].map(([m, i]) => `${m}@${i.version}`),
      [`${X}@${X_PATCHED}`, 'partner-org/tool@0.2.0', 'partner-org/util@0.1.0'],
    );
  });

  it('4. mirror -s internal "company/*" pulls its mooncakes dependencies', async () => {
    const index = await servedIndex();
    const picked = resolve(index, { 'company/app': '1.0.0' });
    assert.deepEqual(Object.fromEntries(picked), {
      'company/app': '1.0.0',
      'company/lib': '0.1.0',
      'moonbitlang/parser': '0.1.15',
      'moonbitlang/regexp': '0.3.5',
      [X]: X_PUBLIC,
    });
    const installed = await install(server.url, moonHome, { 'company/app': '1.0.0' });
    assert.equal(installed.size, 5);
    const app = await moduleInfo('company/app');
    assert.deepEqual(
      app.versions.map((v) => [v.version, v.source]),
      [['1.0.0', 'internal']],
    );
    assert.equal((await moduleInfo('moonbitlang/parser')).versions[0]?.source, 'mooncakes');
    assert.equal(
      index.modules.get('moonbitlang/parser')?.get('0.1.15')?.checksum,
      checksumIn(mooncakesFx, 'moonbitlang/parser', '0.1.15'),
    );
  });

  it('5. disabling / removing partner takes its versions out; re-enabling brings them back without downloads', async () => {
    const configFile = path.join(root, 'registry.toml');
    const comments = ['# partner token comes from the environment', '# basic auth for the company registry'];
    const assertConfigKept = async (step: string) => {
      const text = await fs.readFile(configFile, 'utf8');
      for (const comment of comments) assert.ok(text.includes(comment), `${step}: lost "${comment}"`);
      assert.ok(text.includes('token = "${PARTNER_TOKEN}"'), `${step}: lost the partner token reference`);
    };
    const partnerSum = checksumIn(partnerFx, X, X_PATCHED);
    const publicSum = checksumIn(mooncakesFx, X, X_PATCHED);

    const assertPartnerOut = async (step: string, patchedServed: boolean) => {
      const index = await servedIndex();
      assert.ok(!index.modules.has('partner-org/tool'), `${step}: partner-org/tool still served`);
      assert.ok(!index.modules.has('partner-org/util'), `${step}: partner-org/util still served`);
      const same = (await moduleInfo(X)).versions.find((v) => v.version === X_SAME);
      assert.deepEqual(same, {
        ...same,
        checksum: checksumIn(mooncakesFx, X, X_SAME),
        source: 'mooncakes',
      });
      const patched = index.modules.get(X)?.get(X_PATCHED);
      if (patchedServed) {
        assert.equal(patched?.checksum, publicSum, `${step}: ${X}@${X_PATCHED} should be mooncakes' line`);
        const bytes = await download(server.url, X, X_PATCHED, publicSum);
        assert.ok(bytes.equals(bytesIn(mooncakesFx, X, X_PATCHED)));
      } else {
        // mooncakes' archive is not here yet: a listed version must be downloadable.
        assert.equal(patched, undefined, `${step}: ${X}@${X_PATCHED} listed without its archive`);
      }
      assert.equal((await getJson(`${server.url}/user/partner-org/tool`)).status, 404);
    };
    const assertPartnerBack = async (step: string) => {
      const index = await servedIndex();
      assert.equal(index.modules.get(X)?.get(X_PATCHED)?.checksum, partnerSum, step);
      assert.deepEqual([...(index.modules.get('partner-org/tool')?.keys() ?? [])].sort(), ['0.1.0', '0.2.0']);
      assert.ok(index.modules.has('partner-org/util'), step);
      const info = await moduleInfo(X);
      assert.equal(info.versions.find((v) => v.version === X_PATCHED)?.source, 'partner', step);
      const bytes = await download(server.url, X, X_PATCHED, partnerSum);
      assert.ok(bytes.equals(bytesIn(partnerFx, X, X_PATCHED)), step);
    };

    // a) disable + index rebuild: no network at all.
    await cli.ok(['source', 'disable', 'partner']);
    await assertConfigKept('disable');
    let mark = marks();
    await cli.ok(['index', 'rebuild']);
    upstreams().forEach((u, i) => {
      assert.equal(requestsSince(u, mark[i] ?? 0).length, 0, 'index rebuild must not touch the network');
    });
    await recordHead('disable + rebuild');
    await assertPartnerOut('disable + rebuild', false);

    // b) + mirror: mooncakes' x@0.4.40 is downloaded; partner, disabled, is never contacted.
    mark = marks();
    const m = await mirrorJson([X]);
    assert.equal(m.failed, 0, JSON.stringify(m.failures));
    assert.equal(requestsSince(partner, mark[1] ?? 0).length, 0, 'a disabled source was contacted');
    assert.deepEqual(archiveKeys(requestsSince(mooncakes, mark[0] ?? 0)), [`${X}@${X_PATCHED}`]);
    await recordHead('disable + mirror');
    await assertPartnerOut('disable + mirror', true);

    // c) enable + index rebuild: everything is on disk, nothing is downloaded.
    await cli.ok(['source', 'enable', 'partner']);
    await assertConfigKept('enable');
    mark = marks();
    await cli.ok(['index', 'rebuild']);
    upstreams().forEach((u, i) => {
      assert.equal(requestsSince(u, mark[i] ?? 0).length, 0, 'index rebuild must not touch the network');
    });
    await recordHead('enable + rebuild');
    await assertPartnerBack('enable + rebuild');

    // d) disable + mirror, then enable + mirror: index fetches only, zero archive requests.
    await cli.ok(['source', 'disable', 'partner']);
    mark = marks();
    await mirrorJson([X]);
    upstreams().forEach((u, i) => {
      assert.deepEqual(archiveKeys(requestsSince(u, mark[i] ?? 0)), [], 'nothing to download');
    });
    assert.equal(requestsSince(partner, mark[1] ?? 0).length, 0, 'a disabled source was contacted');
    await recordHead('disable + mirror (2)');
    await assertPartnerOut('disable + mirror (2)', true);
    await cli.ok(['source', 'enable', 'partner']);
    mark = marks();
    await mirrorJson([X]);
    upstreams().forEach((u, i) => {
      assert.deepEqual(archiveKeys(requestsSince(u, mark[i] ?? 0)), [], 'nothing to download');
    });
    await recordHead('enable + mirror');
    await assertPartnerBack('enable + mirror');
    await assertConfigKept('enable (2)');

    // e) remove + rebuild, then put the source back by hand + rebuild.
    const saved = await fs.readFile(configFile, 'utf8');
    await cli.ok(['source', 'remove', 'partner']);
    assert.doesNotMatch(await fs.readFile(configFile, 'utf8'), /name = "partner"|PARTNER_TOKEN/);
    mark = marks();
    await cli.ok(['index', 'rebuild']);
    await recordHead('remove + rebuild');
    await assertPartnerOut('remove + rebuild', true);
    await fs.writeFile(configFile, saved);
    await cli.ok(['index', 'rebuild']);
    upstreams().forEach((u, i) => {
      assert.equal(requestsSince(u, mark[i] ?? 0).length, 0, 'index rebuild must not touch the network');
    });
    await recordHead('re-add + rebuild');
    await assertPartnerBack('re-add + rebuild');
    await assertStoreVerified();
  });

  it('6. partner failing mid-mirror: same-checksum versions come from mooncakes, others are not served', async () => {
    // a) every partner archive request is reset.
    partner.faults.set('*', 'reset');
    const mark = marks();
    const run = await cli.run(['mirror', '--json', ABORT]);
    partner.faults.clear();
    assert.notEqual(run.code, 0, 'a version that could not be mirrored must fail the run');
    const summary = parseJsonSummary(run);
    assert.deepEqual(
      summary.failures.map((f) => `${f.module}@${f.version}`),
      [`${ABORT}@0.2.0`],
    );
    assert.match(run.stderr + run.stdout, /dummy_abort@0\.2\.0/);
    assert.equal(summary.sources.mooncakes?.downloaded, 1, JSON.stringify(summary.sources));
    assert.equal(summary.sources.partner?.downloaded, 0, JSON.stringify(summary.sources));
    const partnerAsked = archiveKeys(requestsSince(partner, mark[1] ?? 0));
    assert.ok(partnerAsked.includes(`${ABORT}@0.1.0`) && partnerAsked.includes(`${ABORT}@0.2.0`));
    // Same checksum: mooncakes delivers 0.1.0. Other checksum: mooncakes is never asked for 0.2.0.
    assert.deepEqual(archiveKeys(requestsSince(mooncakes, mark[0] ?? 0)), [`${ABORT}@0.1.0`]);
    const index = await servedIndex();
    assert.equal(index.modules.get(ABORT)?.get('0.1.0')?.checksum, checksumIn(mooncakesFx, ABORT, '0.1.0'));
    assert.equal(index.modules.get(ABORT)?.get('0.2.0'), undefined, 'unmirrorable version is listed');
    assert.deepEqual(await storedChecksums(ABORT, '0.2.0'), []);
    assert.deepEqual(await storedChecksums(ABORT, '0.1.0'), [checksumIn(mooncakesFx, ABORT, '0.1.0')]);
    const ok = await download(server.url, ABORT, '0.1.0', checksumIn(partnerFx, ABORT, '0.1.0'));
    assert.ok(ok.equals(bytesIn(mooncakesFx, ABORT, '0.1.0')));
    await recordHead('partner reset');
  });

  it('6b. partner down altogether (503 on index and archives): a warning, its last fetched index stands in', async () => {
    // partner listens on a port like 40123 when one was free: a URL holding "401" is no auth error.
    partner.down();
    const mark = marks();
    const down = await cli.run(['mirror', '--json', PROTOBUF]);
    partner.up();
    assert.match(down.stderr, /partner/);
    assert.ok(
      down.stdout.trim().startsWith('{'),
      `partner at ${partner.url} being down (503) aborted the whole run:\n${down.stderr}`,
    );
    assert.notEqual(down.code, 0);
    const downSummary = parseJsonSummary(down);
    assert.deepEqual(
      downSummary.failures.map((f) => `${f.module}@${f.version}`),
      [`${PROTOBUF}@0.1.1`],
    );
    assert.match(down.stderr, /partner/);
    assert.deepEqual(archiveKeys(requestsSince(mooncakes, mark[0] ?? 0)), [`${PROTOBUF}@0.1.0`]);
    const index = await servedIndex();
    assert.equal(
      index.modules.get(PROTOBUF)?.get('0.1.0')?.checksum,
      checksumIn(mooncakesFx, PROTOBUF, '0.1.0'),
    );
    assert.equal(index.modules.get(PROTOBUF)?.get('0.1.1'), undefined);
    assert.deepEqual(await storedChecksums(PROTOBUF, '0.1.1'), []);
    await recordHead('partner down');
    await assertStoreVerified();
  });

  it('6c. partner is back: its patched versions are mirrored from it', async () => {
    const mark = marks();
    const again = await mirrorJson([ABORT, PROTOBUF]);
    assert.equal(again.failed, 0, JSON.stringify(again.failures));
    const asked = archiveKeys(requestsSince(partner, mark[1] ?? 0));
    assert.ok(asked.includes(`${ABORT}@0.2.0`) && asked.includes(`${PROTOBUF}@0.1.1`), asked.join(' '));
    assert.ok(
      !archiveKeys(requestsSince(mooncakes, mark[0] ?? 0)).some(
        (k) => k.endsWith('@0.2.0') || k.endsWith('@0.1.1'),
      ),
    );
    const index = await servedIndex();
    assert.equal(index.modules.get(ABORT)?.get('0.2.0')?.checksum, checksumIn(partnerFx, ABORT, '0.2.0'));
    assert.equal(
      index.modules.get(PROTOBUF)?.get('0.1.1')?.checksum,
      checksumIn(partnerFx, PROTOBUF, '0.1.1'),
    );
    await recordHead('partner back');
  });

  it('7. wrong or missing credentials: a clear error and nothing half-written', async () => {
    const dataDir = path.join(root, 'data');
    const partnerIndex = path.join(dataDir, 'sources', 'partner', 'index.git');
    const packagesDir = path.join(dataDir, 'packages');
    const snapshot = async () => ({
      head: await gitHead(indexGit),
      packages: (await listFiles(packagesDir)).map((f) => path.relative(packagesDir, f)),
      provenance: sha256Hex(await fs.readFile(path.join(dataDir, 'state', 'provenance.json'))),
      partnerIndex: await gitHead(partnerIndex),
    });
    type Snapshot = Awaited<ReturnType<typeof snapshot>>;
    /** `partnerFetched`: partner's own credentials were fine, so its source index may move on. */
    const assertNothingWritten = async (step: string, before: Snapshot, partnerFetched = false) => {
      const now = await snapshot();
      assert.equal(now.head, before.head, `${step}: the served index moved`);
      assert.deepEqual(now.packages, before.packages, `${step}: archives changed`);
      assert.equal(now.provenance, before.provenance, `${step}: provenance.json changed`);
      if (!partnerFetched)
        assert.equal(now.partnerIndex, before.partnerIndex, `${step}: partner index moved`);
      const leftovers = (await listFiles(dataDir)).filter((f) => /\.part$|\.tmp/.test(f));
      assert.deepEqual(leftovers, [], `${step}: partial files left`);
      assert.deepEqual(await listFiles(path.join(dataDir, 'tmp')), [], `${step}: data/tmp not empty`);
    };
    // A new partner version, so a run that wrongly went on would change something.
    await partnerFx.addVersion('partner-org/util', '0.2.0');
    const before = await snapshot();

    for (const args of [
      ['mirror', '-s', 'partner', 'partner-org/*'],
      ['mirror', X],
    ]) {
      const run = await cli.run(args, { env: { PARTNER_TOKEN: WRONG_TOKEN } });
      assert.notEqual(run.code, 0, `${args.join(' ')} with a wrong token succeeded`);
      assert.match(run.stderr, /partner/, `${args.join(' ')}: the error must name the source`);
      assert.match(run.stderr, /401|credential|auth|unauthori[sz]ed/i);
      await assertNothingWritten(`wrong token: ${args.join(' ')}`, before);
    }
    assert.ok(partner.requestsWithAuthorization(`Bearer ${WRONG_TOKEN}`).length > 0);

    const missing = await cli.run(['mirror', X], { env: { PARTNER_TOKEN: undefined } });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /PARTNER_TOKEN/);
    assert.match(missing.stderr, /partner/);
    await assertNothingWritten('missing PARTNER_TOKEN', before);

    const missingPass = await cli.run(['mirror', '-s', 'internal', 'company/*'], {
      env: { INTERNAL_PASS: undefined },
    });
    assert.notEqual(missingPass.code, 0);
    assert.match(missingPass.stderr, /INTERNAL_PASS/);
    await assertNothingWritten('missing INTERNAL_PASS', before, true);

    const wrongBasic = await cli.run(['mirror', '-s', 'internal', 'company/*'], {
      env: { INTERNAL_PASS: WRONG_TOKEN },
    });
    assert.notEqual(wrongBasic.code, 0);
    assert.match(wrongBasic.stderr, /internal/);
    await assertNothingWritten('wrong basic password', before, true);

    // With the right token the new version arrives.
    const fixed = await mirrorJson(['-s', 'partner', 'partner-org/*']);
    assert.equal(fixed.failed, 0);
    assert.equal(fixed.sources.partner?.downloaded, 1);
    await recordHead('right token again');
  });

  it('8. credentials never leak and reach only their own source', async () => {
    const config = await cli.ok(['config']);
    for (const secret of SECRETS) assert.ok(!config.stdout.includes(secret), 'config printed a secret');
    const home = await getJson(`${server.url}/`);
    assert.equal(home.status, 200);
    for (const secret of SECRETS) assert.ok(!home.text.includes(secret), 'GET / shows a secret');
    assert.ok(!home.text.includes('PARTNER_TOKEN') && !/"auth"/.test(home.text), home.text);

    // Nothing under data/: source index repositories (config, FETCH_HEAD...), state, archives.
    const dataDir = path.join(root, 'data');
    const sourceConfigs = (await listFiles(path.join(dataDir, 'sources'))).filter((f) =>
      /index\.git\/(config|FETCH_HEAD)$/.test(f),
    );
    assert.ok(
      sourceConfigs.some((f) => f.includes(`${path.sep}partner${path.sep}`)),
      'no partner index repo',
    );
    assert.deepEqual(await filesContaining(dataDir, SECRETS), []);
    assert.deepEqual(await filesContaining(dataDir, ['Authorization', 'extraHeader', 'extraheader']), []);

    // Every CLI run of this test, and the server's log.
    const printed = `${sessions.map((s) => s.allOutput()).join('\n')}\n${server.output()}`;
    for (const secret of SECRETS) assert.ok(!printed.includes(secret), 'a secret was printed');

    // The partner got its token on index fetches and archive downloads.
    const withToken = partner.requestsWithAuthorization(`Bearer ${PARTNER_TOKEN}`);
    assert.ok(
      withToken.some((r) => r.url.startsWith('/git/index/info/refs')),
      'no git info/refs with token',
    );
    assert.ok(
      withToken.some((r) => r.url.startsWith('/git/index/git-upload-pack')),
      'no upload-pack with token',
    );
    assert.ok(
      withToken.some((r) => r.url.startsWith('/user/')),
      'no archive request with token',
    );
    for (const r of partner.requests) {
      assert.ok(r.headers.authorization !== undefined, `partner request without credentials: ${r.url}`);
    }
    const internalAuth = `Basic ${INTERNAL_BASIC}`;
    assert.ok(internal.requests.some((r) => isGitRequest(r) && r.headers.authorization === internalAuth));
    assert.ok(
      internal.requests.some((r) => r.url.startsWith('/user/') && r.headers.authorization === internalAuth),
    );
    // Nobody else ever saw partner's token, and mooncakes saw no credentials at all.
    for (const [name, upstream] of [
      ['mooncakes', mooncakes],
      ['internal', internal],
    ] as const) {
      for (const r of upstream.requests) {
        const headers = JSON.stringify(r.headers);
        assert.ok(!headers.includes(PARTNER_TOKEN) && !headers.includes(WRONG_TOKEN), `${name} saw a token`);
      }
    }
    assert.ok(mooncakes.requests.length > 0);
    assert.deepEqual(
      mooncakes.requests.filter((r) => r.headers.authorization !== undefined).map((r) => r.url),
      [],
    );
    assert.ok(partner.requests.every((r) => !JSON.stringify(r.headers).includes(INTERNAL_BASIC)));
  });

  it('9. a hand-written registry.toml keeps its comments through source disable / enable', async () => {
    const dir = await tempDir('mr-multi-toml-');
    cleanups.push(dir.remove);
    const original = `# Company registry: mooncakes.io, a partner's patched builds and our own modules.
# Edited by hand; \`moonbit-registry source ...\` must keep these comments.
default_source = "mooncakes" # where \`mirror\` looks without -s

[registry]
name = "hand-written" # shown by GET /

[server]
host = "127.0.0.1"
port = 8080

# ---- upstreams: the lower priority number wins ----

[[sources]]
# the public registry
name = "mooncakes"
type = "mooncakes"
url = "http://127.0.0.1:9"
index_url = "http://127.0.0.1:9/git/index"
index_type = "git"
enabled = true
priority = 100

[[sources]]
# partner: patched builds of public modules, plus partner-org/*
name = "partner"
type = "moonbit-registry"
url = "http://127.0.0.1:10"
index_url = "http://127.0.0.1:10/git/index"
index_type = "git"
enabled = true # switched off when the partner has an outage
priority = 50

[sources.auth]
# token from the CI secret store
type = "bearer"
token = "\${PARTNER_TOKEN}"

[[sources]]
name = "internal" # company modules
type = "custom"
url = "http://127.0.0.1:11"
index_url = "http://127.0.0.1:11/git/index"
index_type = "git"
enabled = true
priority = 25

[sources.auth]
type = "basic"
username = "\${INTERNAL_USER}"
password = "${INTERNAL_PASS}" # a literal secret: allowed, never shown

# end of file
`;
    const file = path.join(dir.path, 'registry.toml');
    await fs.writeFile(file, original);
    const hand = new CliSession(dir.path, {});
    sessions.push(hand);
    const comments = (text: string) =>
      text
        .split('\n')
        .filter((line) => line.includes('#'))
        .map((line) => line.slice(line.indexOf('#')));
    const originalLines = original.split('\n');
    const enabledLine = 'enabled = true # switched off when the partner has an outage';
    assert.ok(originalLines.includes(enabledLine));

    await hand.ok(['source', 'disable', 'partner']);
    const disabled = await fs.readFile(file, 'utf8');
    assert.deepEqual(comments(disabled), comments(original), `comments changed:\n${disabled}`);
    const changed = disabled
      .split('\n')
      .map((line, i) => [line, originalLines[i]])
      .filter(([now, was]) => now !== was);
    assert.deepEqual(changed, [[enabledLine.replace('true', 'false'), enabledLine]]);
    assert.match((await hand.ok(['source', 'list'])).stdout, /^partner \[disabled\]$/m);
    assert.equal((await hand.ok(['config', 'sources.1.auth.token'])).stdout.trim(), '${PARTNER_TOKEN}');
    assert.equal((await hand.ok(['config', 'sources.2.auth.type'])).stdout.trim(), 'basic');
    // A literal password is redacted wherever config is shown.
    assert.ok(!(await hand.ok(['config'])).stdout.includes(INTERNAL_PASS));
    assert.ok(!(await hand.ok(['config', 'sources.2.auth'])).stdout.includes(INTERNAL_PASS));
    assert.ok(!(await hand.ok(['config', 'sources.2.auth.password'])).stdout.includes(INTERNAL_PASS));

    await hand.ok(['source', 'enable', 'partner']);
    const enabled = await fs.readFile(file, 'utf8');
    assert.equal(enabled, original, 'disable + enable must give back the very same file');
    assert.match((await hand.ok(['source', 'list'])).stdout, /^partner \[enabled\]$/m);
    for (const run of hand.runs) {
      for (const secret of SECRETS) assert.ok(!run.stdout.includes(secret) && !run.stderr.includes(secret));
    }
  });
});
