/**
 * What happens to the served index when the set of sources changes under it, and where
 * credentials may go (README "Several sources" and "Credentials"):
 *
 * 1. A higher-priority source starts to win a module@version (partner is added, or enabled,
 *    with a patched `moonbitlang/x@0.4.40`) but its archive is not on disk yet: the line served
 *    so far (mooncakes') stays until a mirror downloads partner's archive.
 * 2. Archive requests to an origin named by `package_url_pattern` carry no credentials.
 * 3. A source whose URL changed is never served from the index fetched at the old URL.
 * 4. A `package_url_pattern` without `{key}` (or `{module}` and `{version}`) is a config error
 *    naming the file, line and key.
 * 5. `source remove` leaves the other sources' `[sources.auth]` tables alone.
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
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, bytesIn, checksumIn, type Fixture } from '../support/fixture.js';
import { download, type RegistryIndex, readIndex, update } from '../support/moon-client.js';
import {
  archiveKeys,
  CliSession,
  getJson,
  gitHead,
  initWithLocalMooncakes,
  insertAfterSource,
  isAncestor,
  isGitRequest,
  listFiles,
  requestsSince,
  setSourceKey,
  sourceKeyLine,
} from '../support/multi-upstream.js';

const PARTNER_TOKEN = `ptok-${randomBytes(16).toString('hex')}`;
const ENV = { PARTNER_TOKEN };
const PARTNER_AUTH = `Bearer ${PARTNER_TOKEN}`;
const PARTNER_AUTH_BLOCK = '[sources.auth]\ntype = "bearer"\ntoken = "${PARTNER_TOKEN}"\n';

const X = 'moonbitlang/x';
/** Patched by partner: other bytes, so another checksum than mooncakes'. */
const X_PATCHED = '0.4.40';
const UTIL = 'partner-org/util';
const ALPHA = 'alpha/lib';
const BETA = 'beta/lib';

interface VersionInfo {
  version: string;
  checksum: string;
  source: string | null;
}

describe('source changes: stand-in lines, credentials by origin, URL changes, package_url_pattern', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let mooncakesFx: Fixture;
  let partnerFx: Fixture;
  let alphaFx: Fixture;
  let betaFx: Fixture;
  let mooncakes: FakeUpstream;
  let partner: FakeUpstream;
  /** Serves partner's very archives on another port (another origin), without auth. */
  let cdn: FakeUpstream;
  let teamA: FakeUpstream;
  let teamB: FakeUpstream;
  let workDir: string;
  let root: string;
  let configFile: string;
  let moonHome: string;
  let indexGit: string;
  let cli: CliSession;
  let server: RunningServer;
  let firstUpdateDone = false;

  const upstreams = () => [mooncakes, partner, cdn, teamA, teamB];
  const marks = () => upstreams().map((u) => u.requests.length);
  const assertNoNetwork = (mark: number[], step: string) => {
    upstreams().forEach((u, i) => {
      assert.deepEqual(
        requestsSince(u, mark[i] ?? 0).map((r) => r.url),
        [],
        `${step}: ${u.url} was contacted`,
      );
    });
  };

  /** `moon update` against the served registry (a pull after the first clone), then read the index. */
  async function servedIndex(): Promise<RegistryIndex> {
    const result = await update(server.url, moonHome);
    if (firstUpdateDone) {
      assert.equal(result.action, 'pull', `moon update had to re-clone: ${result.pullError ?? ''}`);
    }
    firstUpdateDone = true;
    return readIndex(moonHome);
  }

  async function versionsOf(module: string): Promise<VersionInfo[] | undefined> {
    const res = await getJson(`${server.url}/user/${module}`);
    if (res.status === 404) return undefined;
    assert.equal(res.status, 200, `GET /user/${module}: ${res.text}`);
    return (res.body as { versions: VersionInfo[] }).versions;
  }

  async function storedChecksums(module: string, version: string): Promise<string[]> {
    const dir = path.join(root, 'data', 'packages', ...module.split('/'), version);
    return (await listFiles(dir)).map((f) => path.basename(f, '.zip'));
  }

  async function mirrorJson(args: string[]): Promise<JsonSummary> {
    return parseJsonSummary(await cli.ok(['mirror', '--json', ...args]));
  }

  before(async () => {
    [mooncakesFx, partnerFx, alphaFx, betaFx] = await Promise.all([
      buildFixture({ filter: (module) => module === X }),
      buildFixture({
        filter: () => false,
        extraModules: [
          { module: X, version: X_PATCHED, fields: { description: 'partner patched build' } },
          { module: UTIL, version: '0.1.0' },
        ],
        overrideVersions: [{ module: X, version: X_PATCHED }],
      }),
      buildFixture({
        flavor: 'team-a',
        filter: () => false,
        extraModules: [
          { module: ALPHA, version: '0.1.0' },
          { module: ALPHA, version: '0.2.0' },
        ],
      }),
      buildFixture({
        flavor: 'team-b',
        filter: () => false,
        extraModules: [{ module: BETA, version: '1.0.0' }],
      }),
    ]);
    for (const fx of [mooncakesFx, partnerFx, alphaFx, betaFx]) cleanups.push(() => fx.cleanup());
    mooncakes = await FakeUpstream.start({ fixture: mooncakesFx });
    partner = await FakeUpstream.start({
      fixture: partnerFx,
      auth: { type: 'bearer', token: PARTNER_TOKEN },
    });
    cdn = await FakeUpstream.start({ fixture: partnerFx });
    teamA = await FakeUpstream.start({ fixture: alphaFx });
    teamB = await FakeUpstream.start({ fixture: betaFx });
    for (const u of upstreams()) cleanups.push(() => u.close());

    const dir = await tempDir('mr-changes-');
    cleanups.push(dir.remove);
    workDir = dir.path;
    root = path.join(dir.path, 'registry');
    configFile = path.join(root, 'registry.toml');
    moonHome = path.join(dir.path, 'moon-home');
    indexGit = path.join(root, 'data', 'index');
    cli = new CliSession(root, ENV);
    await initWithLocalMooncakes(cli, root, dir.path, 'changes', mooncakes);
    // One retry: a 500 from partner fails quickly.
    await cli.ok(['config', 'mirror.retries', '1']);
    server = await startServe(root);
    cleanups.push(() => server.stop());
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

  it("1. a new winner whose archive is not here yet: mooncakes' line stands in until partner's arrives", async () => {
    const publicSum = checksumIn(mooncakesFx, X, X_PATCHED);
    const partnerSum = checksumIn(partnerFx, X, X_PATCHED);
    assert.notEqual(partnerSum, publicSum, 'fixture: the patched build must differ');
    const allVersions = [...(mooncakesFx.modules.get(X)?.keys() ?? [])].sort();
    assert.ok(allVersions.includes(X_PATCHED) && allVersions.length > 10);

    /** x@0.4.40 is served with mooncakes' line, and every other version of x is still listed. */
    const assertStandIn = async (step: string) => {
      const index = await servedIndex();
      assert.deepEqual(
        [...(index.modules.get(X)?.keys() ?? [])].sort(),
        allVersions,
        `${step}: versions of ${X} dropped`,
      );
      const entry = index.modules.get(X)?.get(X_PATCHED);
      assert.equal(entry?.checksum, publicSum, `${step}: ${X}@${X_PATCHED} is not mooncakes' line`);
      assert.notEqual(entry?.fields.description, 'partner patched build', step);
      const info = (await versionsOf(X))?.find((v) => v.version === X_PATCHED);
      assert.deepEqual(
        info && { checksum: info.checksum, source: info.source },
        { checksum: publicSum, source: 'mooncakes' },
        `${step}: GET /user/${X}`,
      );
      const bytes = await download(server.url, X, X_PATCHED, publicSum);
      assert.ok(bytes.equals(bytesIn(mooncakesFx, X, X_PATCHED)), step);
      assert.deepEqual(await storedChecksums(X, X_PATCHED), [publicSum], `${step}: store`);
    };

    // a) mooncakes only.
    const first = await mirrorJson([X]);
    assert.equal(first.failed, 0, JSON.stringify(first.failures));
    assert.equal(first.sources.mooncakes?.downloaded, allVersions.length);
    const h0 = await gitHead(indexGit);
    const initial = await servedIndex();
    assert.equal(initial.modules.get(X)?.get(X_PATCHED)?.checksum, publicSum);

    // b) partner is added (priority 50: it wins x@0.4.40) but its archive answers 500.
    await cli.ok([
      'source',
      'add',
      'partner',
      '--url',
      partner.url,
      '--index-url',
      partner.indexUrl,
      '--priority',
      '50',
    ]);
    const toml = await fs.readFile(configFile, 'utf8');
    await fs.writeFile(configFile, insertAfterSource(toml, 'partner', PARTNER_AUTH_BLOCK));
    partner.faults.set(`${X}@${X_PATCHED}`, 'http500');
    let mark = marks();
    const failedRun = await cli.run(['mirror', '--json', X]);
    partner.faults.clear();
    assert.notEqual(failedRun.code, 0, 'a winner that could not be downloaded must fail the run');
    const failed = parseJsonSummary(failedRun);
    assert.deepEqual(
      failed.failures.map((f) => `${f.module}@${f.version}`),
      [`${X}@${X_PATCHED}`],
    );
    assert.match(failed.failures[0]?.error ?? '', /500/);
    assert.match(failedRun.stderr, /moonbitlang\/x@0\.4\.40/);
    assert.deepEqual(
      archiveKeys(requestsSince(partner, mark[1] ?? 0)),
      [`${X}@${X_PATCHED}`, `${X}@${X_PATCHED}`],
      'partner asked (once, then one retry) for the version it now wins',
    );
    assert.deepEqual(
      archiveKeys(requestsSince(mooncakes, mark[0] ?? 0)),
      [],
      "mooncakes' other bytes are never fetched for partner's line",
    );
    assert.equal(failed.served.versions, allVersions.length, 'the version left the served index');
    assert.equal(failed.sources.mooncakes?.served, allVersions.length, JSON.stringify(failed.sources));
    assert.equal(failed.sources.partner?.served, 0, JSON.stringify(failed.sources));
    const h1 = await gitHead(indexGit);
    assert.ok(await isAncestor(indexGit, h0, h1));
    await assertStandIn('partner added, download failed');

    // c) disable + enable partner, each followed by an index rebuild (no network): same lines.
    await cli.ok(['source', 'disable', 'partner']);
    mark = marks();
    await cli.ok(['index', 'rebuild']);
    await assertStandIn('partner disabled + rebuild');
    await cli.ok(['source', 'enable', 'partner']);
    const rebuilt = await cli.ok(['index', 'rebuild']);
    assertNoNetwork(mark, 'index rebuild');
    assert.match(rebuilt.stderr, /\b1 versions? need/, rebuilt.stderr);
    await assertStandIn('partner enabled + rebuild');
    const h2 = await gitHead(indexGit);
    assert.ok(await isAncestor(indexGit, h1, h2));

    // d) a mirror of partner's own modules downloads partner's x@0.4.40 too: its line takes over.
    mark = marks();
    const fixed = await mirrorJson(['-s', 'partner', 'partner-org/*']);
    assert.equal(fixed.failed, 0, JSON.stringify(fixed.failures));
    assert.deepEqual(archiveKeys(requestsSince(partner, mark[1] ?? 0)).sort(), [
      `${X}@${X_PATCHED}`,
      `${UTIL}@0.1.0`,
    ]);
    assert.equal(fixed.sources.partner?.downloaded, 2, JSON.stringify(fixed.sources));
    assert.equal(fixed.served.changed, true);
    const h3 = await gitHead(indexGit);
    assert.notEqual(h3, h2);
    assert.ok(await isAncestor(indexGit, h2, h3), 'the switch is a new commit on top');
    const index = await servedIndex();
    const entry = index.modules.get(X)?.get(X_PATCHED);
    assert.equal(entry?.checksum, partnerSum);
    assert.equal(entry?.fields.description, 'partner patched build', "partner's whole line is served");
    assert.equal(index.modules.get(X)?.size, allVersions.length);
    const info = (await versionsOf(X))?.find((v) => v.version === X_PATCHED);
    assert.equal(info?.source, 'partner');
    assert.equal(info?.checksum, partnerSum);
    const bytes = await download(server.url, X, X_PATCHED, partnerSum);
    assert.ok(bytes.equals(bytesIn(partnerFx, X, X_PATCHED)));
    assert.deepEqual((await storedChecksums(X, X_PATCHED)).sort(), [partnerSum, publicSum].sort());
  });

  it("2. archives named by package_url_pattern on another origin get no credentials; partner's git fetch does", async () => {
    const saved = await fs.readFile(configFile, 'utf8');
    await fs.writeFile(
      configFile,
      setSourceKey(saved, 'partner', 'package_url_pattern', `${cdn.url}/user/{key}.zip`),
    );
    assert.equal(
      (await cli.ok(['config', 'sources.1.package_url_pattern'])).stdout.trim(),
      `${cdn.url}/user/{key}.zip`,
    );
    await partnerFx.addVersion(UTIL, '0.2.0');
    const mark = marks();
    const run = await mirrorJson(['-s', 'partner', 'partner-org/*']);
    assert.equal(run.failed, 0, JSON.stringify(run.failures));
    assert.equal(run.sources.partner?.downloaded, 1, JSON.stringify(run.sources));

    const cdnRequests = requestsSince(cdn, mark[2] ?? 0);
    assert.deepEqual(archiveKeys(cdnRequests), [`${UTIL}@0.2.0`]);
    for (const r of cdnRequests) {
      assert.equal(r.headers.authorization, undefined, `${r.url} carried credentials to ${cdn.url}`);
      assert.ok(!JSON.stringify(r.headers).includes(PARTNER_TOKEN), `${r.url} carried the token`);
    }
    const partnerRequests = requestsSince(partner, mark[1] ?? 0);
    assert.deepEqual(archiveKeys(partnerRequests), [], 'archives came from partner itself');
    const git = partnerRequests.filter(isGitRequest);
    assert.ok(
      git.some((r) => r.url.startsWith('/git/index/info/refs')),
      'no index fetch',
    );
    for (const r of git) assert.equal(r.headers.authorization, PARTNER_AUTH, `${r.url} without the token`);
    assert.ok(
      partnerRequests.every((r) => r.status !== 401),
      'partner refused a request',
    );

    const util = await versionsOf(UTIL);
    assert.deepEqual(
      util?.map((v) => [v.version, v.source, v.checksum]),
      ['0.1.0', '0.2.0'].map((v) => [v, 'partner', checksumIn(partnerFx, UTIL, v)]),
    );
    const bytes = await download(server.url, UTIL, '0.2.0', checksumIn(partnerFx, UTIL, '0.2.0'));
    assert.ok(bytes.equals(bytesIn(partnerFx, UTIL, '0.2.0')));
    await fs.writeFile(configFile, saved);
  });

  it('3. a source pointed at another URL is never served from the index fetched at the old one', async () => {
    const teamIndex = path.join(root, 'data', 'sources', 'team', 'index.git');
    const addTeamAt = (upstream: FakeUpstream) =>
      cli.ok([
        'source',
        'add',
        'team',
        '--url',
        upstream.url,
        '--index-url',
        upstream.indexUrl,
        '--priority',
        '300',
      ]);
    const assertTeamServes = async (step: string, expected: Record<string, string[]>) => {
      const index = await servedIndex();
      for (const module of [ALPHA, BETA]) {
        const versions = expected[module] ?? [];
        assert.deepEqual(
          [...(index.modules.get(module)?.keys() ?? [])].sort(),
          versions,
          `${step}: served versions of ${module}`,
        );
        const info = await versionsOf(module);
        assert.deepEqual(
          info?.map((v) => [v.version, v.source]) ?? [],
          versions.map((v) => [v, 'team']),
          `${step}: GET /user/${module}`,
        );
      }
    };
    /** A mirror with mooncakes selected while team's (new) upstream is down. */
    const mirrorWhileTeamDown = async (step: string, down: FakeUpstream, old: FakeUpstream) => {
      down.down();
      const mark = marks();
      const run = await cli.run(['mirror', '--json', X]);
      down.up();
      assert.equal(run.code, 0, `${step}: ${run.stderr}`);
      assert.match(run.stderr, /team.*left out|left out.*team/s, `${step}: no warning:\n${run.stderr}`);
      assert.ok(
        requestsSince(down, mark[upstreams().indexOf(down)] ?? 0).some((r) => r.status === 503),
        `${step}: the new URL was not tried`,
      );
      assert.deepEqual(requestsSince(old, mark[upstreams().indexOf(old)] ?? 0), [], `${step}: old URL used`);
      const summary = parseJsonSummary(run);
      assert.equal(summary.sources.team?.served, 0, `${step}: ${JSON.stringify(summary.sources)}`);
    };

    // a) team at A: alpha/lib.
    await addTeamAt(teamA);
    assert.equal((await cli.ok(['config', 'sources.2.name'])).stdout.trim(), 'team');
    const a = await mirrorJson(['-s', 'team', 'alpha/*']);
    assert.equal(a.failed, 0, JSON.stringify(a.failures));
    assert.equal(a.sources.team?.downloaded, 2);
    await assertTeamServes('team at A', { [ALPHA]: ['0.1.0', '0.2.0'] });
    const aCommit = await gitHead(teamIndex);

    // b) hand edit of registry.toml to B, then index rebuild (no network): A's index is not used.
    const atA = await fs.readFile(configFile, 'utf8');
    await fs.writeFile(
      configFile,
      atA.replace(`url = "${teamA.url}"`, `url = "${teamB.url}"`).replace(teamA.indexUrl, teamB.indexUrl),
    );
    assert.equal((await cli.ok(['config', 'sources.2.index_url'])).stdout.trim(), teamB.indexUrl);
    let mark = marks();
    const rebuild = await cli.ok(['index', 'rebuild']);
    assertNoNetwork(mark, 'index rebuild');
    assert.match(rebuild.stderr, /team/, rebuild.stderr);
    await assertTeamServes('hand edit to B + rebuild', {});
    await fs.writeFile(configFile, atA);

    // c) `config sources.2.url / index_url` to B, B down: a mirror of mooncakes leaves team out.
    const again = await mirrorJson(['-s', 'team', 'alpha/*']);
    assert.equal(again.failed, 0, JSON.stringify(again.failures));
    await assertTeamServes('back at A', { [ALPHA]: ['0.1.0', '0.2.0'] });
    await cli.ok(['config', 'sources.2.url', teamB.url]);
    await cli.ok(['config', 'sources.2.index_url', teamB.indexUrl]);
    await mirrorWhileTeamDown('config to B, B down', teamB, teamA);
    await assertTeamServes('config to B, B down', {});

    // d) B up: team's index comes from B.
    mark = marks();
    const b = await mirrorJson(['-s', 'team', 'beta/*']);
    assert.equal(b.failed, 0, JSON.stringify(b.failures));
    assert.equal(b.sources.team?.downloaded, 1);
    assert.deepEqual(requestsSince(teamA, mark[3] ?? 0), [], 'A was contacted');
    assert.ok(requestsSince(teamB, mark[4] ?? 0).some(isGitRequest));
    await assertTeamServes('team at B', { [BETA]: ['1.0.0'] });
    assert.notEqual(await gitHead(teamIndex), aCommit);
    // alpha/* is not in team's index any more.
    const gone = await cli.run(['mirror', '--json', '-s', 'team', 'alpha/*']);
    assert.notEqual(gone.code, 0, 'alpha/* matched in B');

    // e) source remove + source add with the same name, back at A while A is down.
    await cli.ok(['source', 'remove', 'team']);
    assert.ok(
      (await fs.readFile(configFile, 'utf8')).includes(PARTNER_AUTH_BLOCK.trimEnd()),
      'partner kept its auth',
    );
    await addTeamAt(teamA);
    await mirrorWhileTeamDown('remove + add at A, A down', teamA, teamB);
    await assertTeamServes('remove + add at A, A down', {});
    mark = marks();
    const back = await mirrorJson(['-s', 'team', 'alpha/*']);
    assert.equal(back.failed, 0, JSON.stringify(back.failures));
    assert.equal(back.downloaded, 0, 'the archives were on disk');
    assert.deepEqual(requestsSince(teamB, mark[4] ?? 0), [], 'B was contacted');
    await assertTeamServes('team back at A', { [ALPHA]: ['0.1.0', '0.2.0'] });
  });

  it('4. a package_url_pattern without {key} (or {module} and {version}) fails every command, naming file, line and key', async () => {
    const dir = path.join(workDir, 'patterns');
    const patterns = new CliSession(dir, {});
    await patterns.ok(['init', dir, '--name', 'patterns'], { cwd: workDir });
    await patterns.ok(['source', 'add', 'cdn', '--url', 'http://127.0.0.1:9', '--priority', '10']);
    await patterns.ok(['source', 'disable', 'mooncakes']);
    await patterns.ok(['source', 'default', 'cdn']);
    const file = path.join(dir, 'registry.toml');
    const good = await fs.readFile(file, 'utf8');
    const keyRe = /sources(\[1\]|\.1)\.package_url_pattern/;

    const everyKind = [
      ['source', 'list'],
      ['config', 'server.port'],
      ['mirror', X],
      ['index', 'rebuild'],
      ['serve', '--port', '0'],
    ];
    for (const [bad, commands] of [
      ['http://x/static.zip', everyKind],
      ['{url}/user/{module}.zip', [['source', 'list']]],
      ['{url}/user/{version}.zip', [['config']]],
    ] as const) {
      const text = setSourceKey(good, 'cdn', 'package_url_pattern', bad);
      await fs.writeFile(file, text);
      const line = sourceKeyLine(text, 'cdn', 'package_url_pattern');
      for (const args of commands) {
        const run = await patterns.run([...args], { timeoutMs: 15_000 });
        const what = `${args.join(' ')} with package_url_pattern = "${bad}"`;
        assert.equal(run.code, 1, `${what}: exit ${run.code}\n${run.stdout}\n${run.stderr}`);
        assert.match(run.stderr, new RegExp(`registry\\.toml line ${line}\\b`), `${what}:\n${run.stderr}`);
        assert.match(run.stderr, keyRe, `${what}:\n${run.stderr}`);
        assert.match(run.stderr, /\{key\}/, `${what}: the message should say what is missing`);
      }
    }

    // Patterns that are fine.
    for (const ok of [
      '{url}/user/{key}.zip',
      'https://cdn.example.com/{module}/{version}.zip',
      'http://127.0.0.1:9/dl/{key}',
    ]) {
      await fs.writeFile(file, setSourceKey(good, 'cdn', 'package_url_pattern', ok));
      const list = await patterns.ok(['source', 'list']);
      assert.match(list.stdout, /^cdn \(default\) \[enabled\]$/m);
      assert.equal((await patterns.ok(['config', 'sources.1.package_url_pattern'])).stdout.trim(), ok);
    }

    // Setting one through the CLI is refused, and the file is left as it was.
    await fs.writeFile(file, good);
    const viaConfig = await patterns.run(['config', 'sources.1.package_url_pattern', 'http://x/static.zip']);
    assert.notEqual(viaConfig.code, 0);
    assert.match(viaConfig.stderr, keyRe);
    assert.equal(await fs.readFile(file, 'utf8'), good);
    const viaAdd = await patterns.run([
      'source',
      'add',
      'static',
      '--url',
      'http://127.0.0.1:9',
      '--package-url-pattern',
      'http://x/static.zip',
    ]);
    assert.notEqual(viaAdd.code, 0);
    assert.match(viaAdd.stderr, /package_url_pattern/);
    assert.equal(await fs.readFile(file, 'utf8'), good);
  });

  it("5. source remove keeps the other sources' [sources.auth] tables", async () => {
    const dir = path.join(workDir, 'remove');
    const hand = new CliSession(dir, ENV);
    await hand.ok(['init', dir, '--name', 'remove'], { cwd: workDir });
    for (const [name, port] of [
      ['first', '10'],
      ['partner', '11'],
      ['last', '12'],
    ] as const) {
      await hand.ok(['source', 'add', name, '--url', `http://127.0.0.1:${port}`]);
    }
    const file = path.join(dir, 'registry.toml');
    await fs.writeFile(
      file,
      insertAfterSource(await fs.readFile(file, 'utf8'), 'partner', PARTNER_AUTH_BLOCK),
    );
    const token = async () => (await hand.ok(['config', 'sources.2.auth.token'])).stdout.trim();
    assert.equal(await token(), '${PARTNER_TOKEN}');
    for (const removed of ['last', 'first']) {
      await hand.ok(['source', 'remove', removed]);
      const text = await fs.readFile(file, 'utf8');
      assert.ok(
        text.includes(PARTNER_AUTH_BLOCK.trimEnd()),
        `source remove ${removed} dropped partner's [sources.auth]:\n${text}`,
      );
    }
    assert.equal((await hand.ok(['config', 'sources.1.name'])).stdout.trim(), 'partner');
    assert.equal((await hand.ok(['config', 'sources.1.auth.token'])).stdout.trim(), '${PARTNER_TOKEN}');
  });
});
