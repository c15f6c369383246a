/**
 * Malformed data in an upstream's git index (issue 5): lines that do not parse, index "files"
 * that are folders, symlinks or submodules, names and versions that climb out of a folder or
 * are too long for any file system, a megabyte line, a file of 100k lines, and a tree git itself
 * refuses to send. Each case is a real commit on the fake upstream that the real CLI fetches.
 *
 * Neither `mirror` (for patterns that match good and bad names, then `--full`) nor
 * `serve --proxy` may write outside the registry's data/ folder, crash or hang on it: the good
 * modules next to the bad ones are mirrored, served and installable by a moon-like client, one
 * warning names each bad entry, the upstream is never asked for a bad entry's archive, and
 * requests for bad names get a 4xx while /health stays 200.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type CliResult,
  copyRegistry,
  errorLines,
  initRegistryWithSource,
  isRecord,
  type RunningServer,
  runCli,
  runCliOk,
  startServe,
  tempDir,
} from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, checksumIn, type ExtraModule, type Fixture, sha256Hex } from '../support/fixture.js';
import { git } from '../support/git.js';
import {
  archiveUrl,
  download,
  indexDirOf,
  type RegistryIndex,
  readIndex,
  readServedIndex,
  update,
} from '../support/moon-client.js';
import { getJson } from '../support/multi-upstream.js';
import { raw } from '../support/test-registry.js';

// ---------------------------------------------------------------------------------------------
// Constants

const SOURCE = 'up';

/** The good modules every case keeps next to its bad entries. */
const GOOD: ExtraModule[] = [
  { module: 'alice/ok', version: '1.0.0' },
  { module: 'alice/ok', version: '1.1.0' },
  // Deeper than owner/name, as the protocol allows (tonyfettes/js/test): a good module.
  { module: 'alice/deep/er/mod', version: '0.1.0' },
  { module: 'bob/good', version: '2.0.0', deps: { 'alice/ok': '1.0.0' } },
];

/** Match the good modules and every bad name planted under alice/ (`**` crosses folders). */
const PATTERNS = ['alice/**', 'bob/*'];

/** In every name that tries to climb out: whatever it would create is easy to look for. */
const ESCAPE = `mr-malformed-${process.pid}-${Date.now()}`;

/** A name that, taken as a path, would be absolute. */
const ABSOLUTE = path.join(os.tmpdir(), `${ESCAPE}-absolute`);

// ---------------------------------------------------------------------------------------------
// Shared state

let upstream: FakeUpstream;
let scratch: { path: string; remove: () => Promise<void> };
/** Just after init + `source add up` (mooncakes.io disabled): nothing fetched, nothing stored. */
let pristine: string;
let counter = 0;
const fixtures: Fixture[] = [];
const running = new Set<RunningServer>();

// ---------------------------------------------------------------------------------------------
// What a case plants upstream

interface Planted {
  /** Substrings of the one "index entries skipped" warning: at least one per bad entry. */
  warned: string[];
  /** Request paths (from `/user/` on, sent exactly as written) that must get a 4xx. */
  refused: string[];
  /** Good module@versions this case publishes besides GOOD. */
  extraGood?: string[];
}

interface MalformedCase {
  title: string;
  plant(fixture: Fixture): Promise<Planted>;
}

function keyOf(module: string, version: string): string {
  return `${module}@${version}`;
}

/** One index line (JSON Lines), as an upstream could write it. */
function line(fields: Record<string, unknown>): string {
  return JSON.stringify(fields);
}

/** The path `moon` requests for module@version: `/user/<form-urlencoded module/version>.zip`. */
function archivePath(module: string, version: string): string {
  return archiveUrl('', module, version);
}

/** How a path from the upstream tree appears in the warning (quoted, control characters escaped). */
function ignored(treePath: string, why: string): string {
  return `ignoring ${JSON.stringify(treePath)} (${why})`;
}

// ---------------------------------------------------------------------------------------------
// The cases

const CASES: MalformedCase[] = [
  {
    title: 'lines that do not parse: garbage, JSON that is no object, no name, no version, bad checksums',
    async plant(fx) {
      const sum = checksumIn(fx, 'alice/ok', '1.0.0');
      // alice/ok.index holds two good lines; these are lines 3 to 5.
      await fx.appendIndexLines('alice/ok', [
        'this is not JSON {',
        '[1, 2, 3]',
        line({ name: 'alice/ok', checksum: sum }),
      ]);
      // bob/good.index holds one good line; these are lines 2 to 4.
      await fx.appendIndexLines('bob/good', [
        line({ name: 'bob/good', version: '2.0.1' }),
        line({ name: 'bob/good', version: '2.0.2', checksum: 'not-a-sha256' }),
        line({ name: 'bob/good', version: '2.0.3', checksum: 12345 }),
      ]);
      await fx.commitFiles(
        {
          'user/alice/junk.index': '\u0001\u0002 binary junk\n{"name": "alice/junk", "version"\n',
          'user/alice/noname.index': `"a JSON string"\n${line({ version: '1.0.0', checksum: sum })}\n`,
        },
        'junk index files',
      );
      return {
        warned: [
          'alice/ok: line 3 skipped: not valid JSON',
          'alice/ok: line 4 skipped: not a JSON object',
          'alice/ok: line 5 skipped: invalid version undefined',
          'bob/good: line 2 skipped: invalid checksum for 2.0.1',
          'bob/good: line 3 skipped: invalid checksum for 2.0.2',
          'bob/good: line 4 skipped: invalid checksum for 2.0.3',
          'alice/junk: line 1 skipped: not valid JSON',
          'alice/junk: line 2 skipped: not valid JSON',
          'alice/noname: line 1 skipped: not a JSON object',
          'alice/noname: line 2 skipped: name undefined does not match',
        ],
        refused: [
          archivePath('bob/good', '2.0.1'),
          archivePath('bob/good', '2.0.2'),
          archivePath('alice/junk', '1.0.0'),
          archivePath('alice/noname', '1.0.0'),
        ],
      };
    },
  },
  {
    title: 'an index "file" that is a folder, and names nested too deep or too long for a file system',
    async plant(fx) {
      const sum = checksumIn(fx, 'alice/ok', '1.0.0');
      // Each segment fits a file name, the whole does not fit a path (over 4 KiB).
      const deep = ['alice', ...Array.from({ length: 30 }, (_, i) => `level${i}-${'d'.repeat(140)}`)].join(
        '/',
      );
      // 100 characters, 200 UTF-16 units, but 400 bytes: no file system takes it as a name.
      const camels = `alice/${'🐫'.repeat(100)}`;
      // Published properly, archives included: only their names are wrong.
      await fx.addVersion(deep, '1.0.0');
      await fx.addVersion(camels, '1.0.0');
      await fx.commitRawEntries(
        [
          {
            path: ['user', 'alice', 'dir.index', 'inner.index'],
            mode: '100644',
            content: `${line({ name: 'alice/dir.index/inner', version: '1.0.0', checksum: sum })}\n`,
          },
          { path: ['user', 'alice', 'dir.index', 'README'], mode: '100644', content: 'not an index\n' },
          {
            path: ['user', 'alice', 'trailing', '.index'],
            mode: '100644',
            content: `${line({ name: 'alice/trailing/', version: '1.0.0', checksum: sum })}\n`,
          },
        ],
        'folders named like index files',
      );
      return {
        warned: [
          ignored('user/alice/dir.index/inner.index', 'not a valid module name'),
          ignored('user/alice/trailing/.index', 'not a valid module name'),
          `ignoring "user/alice/level0-ddd`,
          `ignoring "user/alice/🐫🐫🐫`,
        ],
        refused: [
          archivePath('alice/dir.index/inner', '1.0.0'),
          archivePath(deep, '1.0.0'),
          archivePath(camels, '1.0.0'),
          `/user/${deep}/1.0.0.zip`,
        ],
      };
    },
  },
  {
    title: 'tree paths that climb out (`..`), hide behind backslashes or `.`, or carry control characters',
    async plant(fx) {
      const sum = checksumIn(fx, 'alice/ok', '1.0.0');
      const climbing = `../../../${ESCAPE}-tree/x`;
      const backslashes = `..\\..\\..\\${ESCAPE}-backslash`;
      const forged = 'forged\u001b[31m\nerror: forged line';
      const entry = (names: string[], name: string) => ({
        path: names,
        mode: '100644' as const,
        content: `${line({ name, version: '1.0.0', checksum: sum })}\n`,
      });
      await fx.commitRawEntries(
        [
          entry(['user', '..', '..', '..', `${ESCAPE}-tree`, 'x.index'], climbing),
          entry(['user', 'alice', `${backslashes}.index`], `alice/${backslashes}`),
          entry(['user', 'alice', '.', 'dot.index'], 'alice/./dot'),
          entry(['user', 'alice', `${forged}.index`], `alice/${forged}`),
        ],
        'paths that climb',
      );
      return {
        warned: [
          ignored(`user/${climbing}.index`, 'not a valid module name'),
          ignored(`user/alice/${backslashes}.index`, 'not a valid module name'),
          ignored('user/alice/./dot.index', 'not a valid module name'),
          ignored(`user/alice/${forged}.index`, 'not a valid module name'),
        ],
        refused: [
          archivePath(climbing, '1.0.0'),
          `/user/${climbing}/1.0.0.zip`,
          archivePath(`alice/${backslashes}`, '1.0.0'),
          `/user/alice/${backslashes.replaceAll('\\', '%5C')}/1.0.0.zip`,
          archivePath('alice/./dot', '1.0.0'),
          `/user/alice/%2e/dot/1.0.0.zip`,
          archivePath(`alice/${forged}`, '1.0.0'),
        ],
      };
    },
  },
  {
    title: '`name` and `version` fields that disagree with the file, climb out, or carry NUL',
    async plant(fx) {
      const sum = checksumIn(fx, 'alice/ok', '1.0.0');
      // 256 characters: semver takes it, no file system takes it as a folder name. Published
      // properly, archive included: only the version is wrong. Line 3 of alice/ok.index.
      const long = `1.0.0-${'a'.repeat(250)}`;
      await fx.addVersion('alice/ok', long);
      const climbing = `../../${ESCAPE}-name/x`;
      const backslashes = `alice\\..\\..\\${ESCAPE}-backslash`;
      // Spread over three files (one good line each, or two): each file's first three bad
      // lines are named.
      await fx.appendIndexLines('alice/ok', [
        line({ name: climbing, version: '3.0.0', checksum: sum }),
        line({ name: 'bob/other', version: '3.0.1', checksum: sum }),
      ]);
      await fx.appendIndexLines('bob/good', [
        line({ name: `${ABSOLUTE}/x`, version: '3.0.2', checksum: sum }),
        line({ name: 'bob/good\u0000', version: '3.0.3', checksum: sum }),
        line({ name: backslashes, version: '3.0.4', checksum: sum }),
      ]);
      await fx.appendIndexLines('alice/deep/er/mod', [
        line({ name: 'alice/deep/er/mod', version: '../../x', checksum: sum }),
        line({ name: 'alice/deep/er/mod', version: '1.0.0/../../x', checksum: sum }),
        // A module that does exist, just not this file's.
        line({ name: 'alice/ok', version: '3.0.5', checksum: sum }),
      ]);
      const mismatch = (name: string) => `name ${JSON.stringify(name)} does not match the file's module`;
      return {
        warned: [
          `alice/ok: line 3 skipped: invalid version "1.0.0-aaaa`,
          `alice/ok: line 4 skipped: ${mismatch(climbing)}`,
          `alice/ok: line 5 skipped: ${mismatch('bob/other')}`,
          `bob/good: line 2 skipped: ${mismatch(`${ABSOLUTE}/x`)}`,
          `bob/good: line 3 skipped: ${mismatch('bob/good\u0000')}`,
          `bob/good: line 4 skipped: ${mismatch(backslashes)}`,
          'alice/deep/er/mod: line 2 skipped: invalid version "../../x"',
          'alice/deep/er/mod: line 3 skipped: invalid version "1.0.0/../../x"',
          `alice/deep/er/mod: line 4 skipped: ${mismatch('alice/ok')}`,
        ],
        refused: [
          archivePath('alice/ok', long),
          archivePath(climbing, '3.0.0'),
          `/user/${climbing}/3.0.0.zip`,
          archivePath('bob/other', '3.0.1'),
          archivePath(`${ABSOLUTE}/x`, '3.0.2'),
          '/user/bob%2Fgood%00%2F3.0.3.zip',
          archivePath(backslashes, '3.0.4'),
          archivePath('alice/deep/er/mod', '../../x'),
          '/user/alice/deep/er/mod/../../x.zip',
          archivePath('alice/deep/er/mod', '1.0.0/../../x'),
          archivePath('alice/ok', '3.0.5'),
        ],
      };
    },
  },
  {
    title: 'symlinks (to /etc/passwd, to ../../.., to a valid line) and a submodule named like index files',
    async plant(fx) {
      // Published properly first (archive upstream), then its file replaced by a symlink whose
      // target is that very line: `moon` would find a dangling link, not an index file.
      const linked = await fx.addVersion('alice/linked', '1.0.0');
      await fx.commitRawEntries(
        [
          { path: ['user', 'alice', 'passwd.index'], mode: '120000', content: '/etc/passwd' },
          { path: ['user', 'alice', 'up.index'], mode: '120000', content: '../../..' },
          { path: ['user', 'alice', 'linked.index'], mode: '120000', content: linked.line },
          { path: ['user', 'alice', 'sub.index'], mode: '160000', oid: await fx.headCommit() },
        ],
        'symlinks and a submodule',
      );
      return {
        warned: [
          ignored('user/alice/passwd.index', 'a symlink, not a file'),
          ignored('user/alice/up.index', 'a symlink, not a file'),
          ignored('user/alice/linked.index', 'a symlink, not a file'),
          ignored('user/alice/sub.index', 'a submodule, not a file'),
        ],
        refused: [
          archivePath('alice/linked', '1.0.0'),
          archivePath('alice/passwd', '1.0.0'),
          archivePath('alice/up', '1.0.0'),
          archivePath('alice/sub', '1.0.0'),
        ],
      };
    },
  },
  {
    title: 'a 5 MB line, a 5 MB name, a line nested a million levels deep, a file of 100k lines',
    async plant(fx) {
      const sum = checksumIn(fx, 'alice/ok', '1.0.0');
      // 100k junk lines, then one good line: alice/many@1.0.0 is a good module.
      const many = await fx.addVersion('alice/many', '1.0.0');
      const junk = Array.from({ length: 100_000 }, (_, i) => `junk line ${i}`);
      await fx.commitFiles({ 'user/alice/many.index': `${[...junk, many.line].join('\n')}\n` }, '100k lines');
      const huge = 'x'.repeat(5 * 1024 * 1024);
      // Lines 3 to 5 of alice/ok.index.
      await fx.appendIndexLines('alice/ok', [
        `{"name": "alice/ok", "version": "5.0.0", "readme": "${huge}`,
        line({ name: `alice/${huge}`, version: '5.0.1', checksum: sum }),
        `${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`,
      ]);
      return {
        warned: [
          'alice/many: line 1 skipped: not valid JSON',
          'alice/many: line 3 skipped: not valid JSON',
          'alice/many: 99997 more lines skipped',
          'alice/ok: line 3 skipped: not valid JSON',
          `alice/ok: line 4 skipped: name "alice/xxxxxxxx`,
          `(${huge.length + 'alice/'.length} characters) does not match`,
          'alice/ok: line 5 skipped: nests deeper than 128 levels',
        ],
        refused: [archivePath('alice/ok', '5.0.0'), archivePath('alice/ok', '5.0.1')],
        extraGood: [keyOf('alice/many', '1.0.0')],
      };
    },
  },
];

// ---------------------------------------------------------------------------------------------
// Helpers

async function freshFixture(): Promise<Fixture> {
  const fixture = await buildFixture({ filter: () => false, extraModules: GOOD });
  fixtures.push(fixture);
  return fixture;
}

/** A copy of the pristine registry as `<fresh parent>/registry`, the parent holding nothing else. */
async function newRegistry(): Promise<{ parent: string; root: string }> {
  const parent = path.join(scratch.path, `case-${counter++}`);
  const root = path.join(parent, 'registry');
  await copyRegistry(pristine, root);
  return { parent, root };
}

function newMoonHome(): string {
  return path.join(scratch.path, `moon-home-${counter++}`);
}

async function timed<T>(job: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = Date.now();
  const value = await job;
  return { value, ms: Date.now() - started };
}

/**
 * Everything under `parent` except the registry's data/ folder: path, kind, and the hash of each
 * file. Equal before and after means nothing was written (or linked) outside data/.
 */
async function outsideData(parent: string): Promise<string[]> {
  const data = path.join('registry', 'data');
  const out: string[] = [];
  for (const entry of await readdir(parent, { recursive: true, withFileTypes: true })) {
    const rel = path.relative(parent, path.join(entry.parentPath, entry.name));
    if (rel === data || rel.startsWith(`${data}${path.sep}`)) continue;
    if (entry.isFile()) out.push(`${rel} file ${sha256Hex(await readFile(path.join(parent, rel)))}`);
    else out.push(`${rel} ${entry.isDirectory() ? 'dir' : entry.isSymbolicLink() ? 'symlink' : 'other'}`);
  }
  return out.sort();
}

/** Nothing any name planted upstream would create if it were ever taken as a path. */
function assertNoEscapes(parent: string): void {
  for (const where of [
    ABSOLUTE,
    path.join(os.tmpdir(), `${ESCAPE}-tree`),
    path.join('/', `${ESCAPE}-tree`),
  ]) {
    assert.equal(existsSync(where), false, `${where} was created`);
  }
  for (const dir of [parent, scratch.path, path.dirname(scratch.path)]) {
    for (const suffix of ['tree', 'name', 'backslash']) {
      assert.equal(existsSync(path.join(dir, `${ESCAPE}-${suffix}`)), false, `${dir}/${ESCAPE}-${suffix}`);
    }
  }
}

/**
 * `module@version` of every archive under data/packages. Every entry is a plain folder or file
 * (no symlink), every folder name a plain name, every file a `<sha256>.zip` holding those bytes.
 */
async function storedKeys(root: string): Promise<string[]> {
  const packages = path.join(root, 'data', 'packages');
  if (!existsSync(packages)) return [];
  const keys: string[] = [];
  for (const entry of await readdir(packages, { recursive: true, withFileTypes: true })) {
    const file = path.join(entry.parentPath, entry.name);
    const rel = path.relative(packages, file);
    assert.ok(!rel.split(path.sep).some((s) => s === '..' || s.includes('\\')), `odd path ${rel}`);
    if (entry.isDirectory()) continue;
    assert.ok(entry.isFile(), `not a plain file in data/packages: ${rel}`);
    const match = /^([0-9a-f]{64})\.zip$/.exec(entry.name);
    assert.ok(match, `stray file in data/packages: ${rel}`);
    assert.equal(sha256Hex(await readFile(file)), match[1], `${rel} holds other bytes than its name says`);
    const parts = rel.split(path.sep).slice(0, -1);
    const version = parts.pop() as string;
    keys.push(keyOf(parts.join('/'), version));
  }
  return keys.sort();
}

function listedKeys(index: RegistryIndex): string[] {
  const keys: string[] = [];
  for (const [module, versions] of index.modules)
    for (const version of versions.keys()) keys.push(keyOf(module, version));
  return keys.sort();
}

/** The one `warning: source "up": index entries skipped: ...` line, naming every bad entry. */
function assertWarning(lines: string[], planted: Planted, where: string): void {
  const warnings = lines.filter((l) => l.includes(`source "${SOURCE}": index entries skipped`));
  assert.equal(warnings.length, 1, `${where}: one warning about skipped entries:\n${lines.join('\n')}`);
  const warning = warnings[0] as string;
  for (const text of planted.warned)
    assert.ok(warning.includes(text), `${where}: names ${text}:\n${warning}`);
  assert.ok(warning.length < 8192, `${where}: a ${warning.length}-character warning`);
}

/** Exit 0, no error and no stack trace, one warning, nothing from upstream driving the terminal. */
function assertCleanRun(result: CliResult, planted: Planted, what: string): void {
  assert.equal(result.code, 0, `${what} exited ${result.code}:\n${result.stderr.slice(0, 4000)}`);
  assert.deepEqual(errorLines(result.stderr), [], `${what}: no error line (none forged either)`);
  assert.doesNotMatch(result.stderr, /\n\s+at .+:\d+:\d+\)?$/m, `${what}: stack trace printed`);
  assert.ok(!result.stderr.includes('\u001b'), `${what}: an escape sequence from upstream reached stderr`);
  assert.ok(result.stderr.length < 64 * 1024, `${what}: ${result.stderr.length} bytes on stderr`);
  assertWarning(
    result.stderr.split('\n').filter((l) => l.startsWith('warning: ')),
    planted,
    what,
  );
}

async function health(url: string): Promise<Record<string, unknown>> {
  const { status, body, text } = await getJson(`${url}/health`);
  assert.equal(status, 200, `/health answered ${status}: ${text}`);
  assert.ok(isRecord(body), text);
  return body;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await delay(100);
  }
}

async function serve(root: string, args: string[]): Promise<RunningServer> {
  const server = await startServe(root, args);
  running.add(server);
  return server;
}

async function stopServer(server: RunningServer): Promise<void> {
  await server.stop();
  running.delete(server);
}

/** The server's pino warnings (level 40), message texts. */
function serverWarnings(server: RunningServer): string[] {
  const messages: string[] = [];
  for (const text of server.output().split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      const record: unknown = JSON.parse(text);
      if (isRecord(record) && record.level === 40 && typeof record.msg === 'string')
        messages.push(record.msg);
    } catch {
      // not a log record
    }
  }
  return messages;
}

/**
 * A moon-like client against `server`: `moon update` lists exactly the good versions (every
 * index file a plain file), each downloads with its checksum, every bad name gets a 4xx, and
 * the good ones and /health still answer afterwards.
 */
async function checkClient(server: RunningServer, planted: Planted, expected: string[]): Promise<void> {
  const home = newMoonHome();
  await update(server.url, home);
  const index = await readIndex(home);
  assert.equal(index.skippedLines, 0, 'the served index holds only good lines');
  assert.deepEqual(listedKeys(index), expected, 'exactly the good versions are listed');
  const modes = (await git(['-C', indexDirOf(home), 'ls-files', '-s'])).split('\n').filter(Boolean);
  for (const entry of modes)
    assert.match(entry, /^100644 /, `not a plain file in the served index: ${entry}`);

  const downloadAll = async () => {
    for (const [module, versions] of index.modules) {
      for (const [version, entry] of versions) {
        await download(server.url, module, version, entry.checksum ?? '');
      }
    }
  };
  await downloadAll();
  for (const request of planted.refused) {
    const res = await raw(server.url, request);
    assert.ok(res.status >= 400 && res.status < 500, `GET ${request.slice(0, 200)} answered ${res.status}`);
  }
  await downloadAll();
  await health(server.url);
}

// ---------------------------------------------------------------------------------------------

describe('malformed upstream data: good modules mirrored and served, bad ones named, nothing outside data/', () => {
  before(async () => {
    scratch = await tempDir('mr-malformed-');
    // Started on an empty fixture; each case swaps in its own.
    upstream = await FakeUpstream.start({ fixture: await freshFixture() });
    const base = await initRegistryWithSource(SOURCE, upstream.url);
    try {
      await runCliOk(['config', 'mirror.timeout_seconds', '10'], { cwd: base.root });
      pristine = path.join(scratch.path, 'pristine');
      await cp(base.root, pristine, { recursive: true });
    } finally {
      await base.remove();
    }
  });

  after(async () => {
    await Promise.allSettled([...running].map((server) => server.stop()));
    running.clear();
    await Promise.allSettled([upstream?.close(), scratch?.remove(), ...fixtures.map((f) => f.cleanup())]);
  });

  for (const c of CASES) {
    test(c.title, async () => {
      const fixture = await freshFixture();
      const planted = await c.plant(fixture);
      upstream.fixture = fixture;
      upstream.clearRecords();
      const expected = [...GOOD.map((g) => keyOf(g.module, g.version)), ...(planted.extraGood ?? [])].sort();

      // mirror: the patterns, then --full; each run bounded, clean, and warning once.
      {
        const { parent, root } = await newRegistry();
        const outside = await outsideData(parent);
        for (const args of [PATTERNS, ['--full']]) {
          const what = `mirror ${args.join(' ')}`;
          const { value: result, ms } = await timed(
            runCli(['mirror', ...args], { cwd: root, timeoutMs: 60_000 }),
          );
          assertCleanRun(result, planted, what);
          assert.ok(ms < 20_000, `${what} took ${ms} ms`);
          assert.deepEqual(await storedKeys(root), expected, `${what}: exactly the good archives stored`);
          const served = await readServedIndex(root, path.join(scratch.path, `clone-${counter++}`));
          assert.deepEqual(listedKeys(served), expected, `${what}: exactly the good versions served`);
        }
        // Scripts reading --json get the same warning in the summary.
        const json = await runCli(['mirror', '--full', '--json'], { cwd: root, timeoutMs: 60_000 });
        const summary = JSON.parse(json.stdout) as { warnings: string[] };
        assertWarning(summary.warnings, planted, 'mirror --full --json');
        assert.deepEqual(await outsideData(parent), outside, 'mirror wrote nothing outside data/');
        assertNoEscapes(parent);

        // What was mirrored installs, served by `serve` (mirror mode).
        const server = await serve(root, ['--no-proxy']);
        try {
          await checkClient(server, planted, expected);
        } finally {
          await stopServer(server);
        }
        assert.deepEqual(await outsideData(parent), outside, 'serve wrote nothing outside data/');
      }

      // serve --proxy on a registry that never mirrored: the same, fetched on demand.
      {
        const { parent, root } = await newRegistry();
        const outside = await outsideData(parent);
        const server = await serve(root, ['--proxy']);
        try {
          await waitFor('the first index sync', async () => {
            // 503 "starting" until the first index is fetched.
            if ((await getJson(`${server.url}/health`)).status === 503) return undefined;
            const sync = (await health(server.url)).sync;
            return isRecord(sync) && sync.last_run ? true : undefined;
          });
          await waitFor('the warning about skipped entries', () =>
            serverWarnings(server).some((m) => m.includes('index entries skipped')) ? true : undefined,
          );
          assertWarning(serverWarnings(server), planted, 'serve --proxy');
          await checkClient(server, planted, expected);
          assert.ok(!server.output().includes('\u001b'), 'an escape sequence from upstream reached the log');
        } finally {
          await stopServer(server);
        }
        assert.deepEqual(await storedKeys(root), expected, 'pull-through stored exactly the good archives');
        assert.deepEqual(await outsideData(parent), outside, 'serve --proxy wrote nothing outside data/');
        assertNoEscapes(parent);
      }

      // Neither ever asked the upstream for a bad entry's archive.
      for (const key of upstream.archiveHits.keys()) {
        assert.ok(expected.includes(key), `the upstream was asked for ${key.slice(0, 200)}`);
      }
    });
  }

  test('a tree git itself refuses to send (an empty name): mirror fails once, clearly; serving goes on', async () => {
    const fixture = await freshFixture();
    upstream.fixture = fixture;
    const expected = GOOD.map((g) => keyOf(g.module, g.version)).sort();
    const { parent, root } = await newRegistry();
    const outside = await outsideData(parent);
    const first = await runCli(['mirror', ...PATTERNS], { cwd: root, timeoutMs: 60_000 });
    assert.equal(first.code, 0, first.stderr);
    const head = (await git(['--git-dir', path.join(root, 'data', 'index'), 'rev-parse', 'main'])).trim();

    // git's pack-objects stops at an empty tree entry name: the upstream cannot send its index.
    await fixture.commitRawEntries(
      [{ path: ['user', 'alice', '', 'x.index'], mode: '100644', content: 'whatever\n' }],
      'an empty name',
    );
    const { value: result, ms } = await timed(
      runCli(['mirror', ...PATTERNS], { cwd: root, timeoutMs: 60_000 }),
    );
    assert.notEqual(result.code, 0, 'the index could not be fetched');
    assert.ok(ms < 20_000, `took ${ms} ms`);
    const errors = errorLines(result.stderr);
    assert.equal(errors.length, 1, result.stderr);
    assert.match(errors[0] as string, new RegExp(`source "${SOURCE}"`), 'names the source');
    assert.doesNotMatch(result.stderr, /\n\s+at .+:\d+:\d+\)?$/m, 'stack trace printed');
    const after = (await git(['--git-dir', path.join(root, 'data', 'index'), 'rev-parse', 'main'])).trim();
    assert.equal(after, head, 'the served index did not move');
    assert.deepEqual(await storedKeys(root), expected);

    // The last fetched index stays served, with or without pull-through.
    for (const args of [['--no-proxy'], ['--proxy']]) {
      const server = await serve(root, args);
      try {
        if (args[0] === '--proxy') {
          await waitFor('the first index sync', async () => {
            // 503 "starting" until the first index is fetched.
            if ((await getJson(`${server.url}/health`)).status === 503) return undefined;
            const sync = (await health(server.url)).sync;
            return isRecord(sync) && sync.last_run ? true : undefined;
          });
        }
        await checkClient(server, { warned: [], refused: [archivePath('alice/', 'x')] }, expected);
      } finally {
        await stopServer(server);
      }
    }
    assert.deepEqual(await outsideData(parent), outside, 'nothing written outside data/');
  });
});
