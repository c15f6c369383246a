/**
 * An upstream registry fixture built from the real mooncakes.io index snapshot: the same index
 * files, history and quirks, but every `checksum` rewritten to match a small synthetic archive
 * that we can serve. Built once per option set into `.cache/fixtures/`, then copied per test.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { strToU8, zipSync } from 'fflate';
import { formatIndexLine, indexTimestamp as pythonTimestamp } from '../../src/core/index-line-format.js';
import { git, gitBuffer } from './git.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const bundlePath = path.resolve(repoRoot, '../shared/data/mooncakes-index-2026-02-14.bundle');
/** Bump when the generated output changes, so stale caches are not reused. */
export const GENERATOR_VERSION = 1;
export const DEFAULT_FLAVOR = 'default';

const cacheRoot = path.join(repoRoot, '.cache', 'fixtures');
/** Fixed commit identity and date: the same options give the same fixture commit id. */
const FIXTURE_EPOCH = Date.UTC(2026, 1, 15) / 1000;
const EXTRA_CREATED_AT = '2026-02-15T00:00:00.000000+00:00';
/** fflate writes DOS times from local-time fields, so build the date from local fields too. */
const ZIP_MTIME = new Date(2024, 0, 1, 0, 0, 0);

export interface ArchiveInfo {
  checksum: string;
  size: number;
  /** The index line as served (checksum already rewritten). */
  line: string;
}

/** module -> version -> archive; the last index line for a version wins, as in `moon`. */
export type ModuleVersions = Map<string, Map<string, ArchiveInfo>>;

export type DepSpec = string | { version?: string; path?: string; alias?: string };

export interface ModuleVersion {
  module: string;
  version: string;
}

export interface ExtraModule extends ModuleVersion {
  deps?: Record<string, DepSpec>;
  /** More index fields (description, deprecated, ...), written after `deps`. */
  fields?: Record<string, unknown>;
}

export interface FixtureOptions {
  /** Goes into every archive's marker.txt: two flavors give different bytes for the same m@v. */
  flavor?: string;
  /** Keep only these real modules (their files are removed in the fixture commit). */
  filter?: (module: string) => boolean;
  /** Versions added in the fixture commit; appended to existing modules' files when present. */
  extraModules?: ExtraModule[];
  /** These module@versions get an archive unlike any other fixture of the same flavor. */
  overrideVersions?: ModuleVersion[];
  /** Default true: build once into .cache/fixtures and copy from there. */
  cache?: boolean;
}

export interface Fixture {
  /** Private directory of this instance (removed by cleanup()). */
  dir: string;
  /** Bare repository whose `main` is the index. */
  gitDir: string;
  /** `<archivesDir>/<sha256>.zip`. Files may be hardlinked from the cache: never write in place. */
  archivesDir: string;
  flavor: string;
  modules: ModuleVersions;
  archiveFor(module: string, version: string): Buffer | undefined;
  archivePath(checksum: string): string;
  /** Publishes module@version (new archive, new index line) as one new commit on `main`. */
  addVersion(module: string, version: string, deps?: Record<string, DepSpec>): Promise<ArchiveInfo>;
  /** Appends raw lines (junk allowed) to a module's index file in one commit; `modules` is not updated. */
  appendIndexLines(module: string, lines: string[]): Promise<string>;
  /** Writes (string) or deletes (null) files at the tip of `main` in one new commit; returns its id. */
  commitFiles(files: Record<string, string | null>, message: string): Promise<string>;
  /**
   * Adds tree entries exactly as given, git's own checks bypassed (names such as `..`, an empty
   * name, a backslash; symlinks and gitlinks), at the tip of `main` in one new commit: what a
   * broken or hostile upstream could serve. Returns the commit id.
   */
  commitRawEntries(entries: RawTreeEntry[], message: string): Promise<string>;
  headCommit(): Promise<string>;
  cleanup(): Promise<void>;
}

/** One entry for Fixture.commitRawEntries. */
export interface RawTreeEntry {
  /** Tree entry names from the root, one per level, written byte for byte (never split on `/`). */
  path: string[];
  /** 100644 file, 100755 executable, 120000 symlink (`content` is its target), 160000 gitlink. */
  mode: '100644' | '100755' | '120000' | '160000';
  /** The blob's bytes (file or symlink target). */
  content?: string | Buffer;
  /** The object the entry points at instead of `content` (a commit id for a gitlink). */
  oid?: string;
}

interface Manifest {
  generator: number;
  flavor: string;
  modules: Array<[string, Array<[string, ArchiveInfo]>]>;
}

interface BuildPlan {
  flavor: string;
  keep: ((module: string) => boolean) | undefined;
  extraModules: ExtraModule[];
  overrides: Set<string>;
}

export async function buildFixture(opts: FixtureOptions = {}): Promise<Fixture> {
  const plan: BuildPlan = {
    flavor: opts.flavor ?? DEFAULT_FLAVOR,
    keep: opts.filter,
    extraModules: opts.extraModules ?? [],
    overrides: new Set((opts.overrideVersions ?? []).map((o) => `${o.module}@${o.version}`)),
  };
  if (opts.cache === false) {
    const dir = await makeInstanceDir();
    await generate(dir, plan);
    return openFixture(dir);
  }
  const cached = await ensureCached(plan, opts);
  return instantiate(cached);
}

// ---------------------------------------------------------------------------------------------
// Archives and index lines

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A small deterministic zip whose root holds moon.mod.json and marker.txt. */
export function makeArchive(module: string, version: string, marker: string): Buffer {
  const file = (text: string): [Uint8Array, { mtime: Date }] => [strToU8(text), { mtime: ZIP_MTIME }];
  const zipped = zipSync(
    {
      'moon.mod.json': file(`${JSON.stringify({ name: module, version }, null, 2)}\n`),
      'marker.txt': file(`${marker}\n`),
    },
    // Stored, not deflated: ten times faster to build and just as valid for the client.
    { level: 0, mtime: ZIP_MTIME },
  );
  return Buffer.from(zipped.buffer, zipped.byteOffset, zipped.byteLength);
}

/** The marker that makes archives of one fixture differ from another's. */
export function archiveMarker(flavor: string, overridden = false): string {
  return overridden ? `${flavor}:override` : flavor;
}

/** The real index's line format (one rule, in src/core/index-line-format.ts). */
export { formatIndexLine, pythonTimestamp };

export function indexFilePath(module: string): string {
  return `user/${module}.index`;
}

const CHECKSUM_FIELD = /("checksum"\s*:\s*")[^"]*"/;

/** Replaces only the checksum value in the raw text, so field order and spacing stay. */
function replaceChecksum(line: string, checksum: string): string {
  return line.replace(CHECKSUM_FIELD, (_match, head: string) => `${head}${checksum}"`);
}

function parseLine(line: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(line);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
    return value as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function record(modules: ModuleVersions, module: string, version: string, info: ArchiveInfo): void {
  let versions = modules.get(module);
  if (!versions) {
    versions = new Map();
    modules.set(module, versions);
  }
  versions.set(version, info);
}

/** Writes each archive once; names are content hashes, so duplicates are identical. */
class ArchiveStore {
  private readonly written = new Set<string>();
  constructor(readonly dir: string) {}

  /** Synchronous: thousands of tiny writes are much faster without a thread-pool hop each. */
  put(archive: Buffer): string {
    const checksum = sha256Hex(archive);
    if (!this.written.has(checksum)) {
      this.written.add(checksum);
      writeFileSync(path.join(this.dir, `${checksum}.zip`), archive);
    }
    return checksum;
  }
}

// ---------------------------------------------------------------------------------------------
// Generation

class Generator {
  readonly modules: ModuleVersions = new Map();
  constructor(
    private readonly plan: BuildPlan,
    private readonly store: ArchiveStore,
  ) {}

  private archive(module: string, version: string): Omit<ArchiveInfo, 'line'> {
    const overridden = this.plan.overrides.has(`${module}@${version}`);
    const bytes = makeArchive(module, version, archiveMarker(this.plan.flavor, overridden));
    return { checksum: this.store.put(bytes), size: bytes.length };
  }

  /** Splitting on '\n' and joining back keeps blank lines and a missing final newline as they were. */
  rewriteIndex(module: string, raw: string): string {
    const lines = raw.split('\n');
    for (let i = 0; i < lines.length; i++) lines[i] = this.rewriteLine(module, lines[i] ?? '');
    return lines.join('\n');
  }

  private rewriteLine(module: string, line: string): string {
    const entry = parseLine(line);
    if (!entry || typeof entry.version !== 'string') return line; // kept as-is, like the lenient reader
    const { checksum, size } = this.archive(module, entry.version);
    const out = typeof entry.checksum === 'string' ? replaceChecksum(line, checksum) : line;
    if (typeof entry.checksum === 'string' && parseLine(out)?.checksum !== checksum) {
      throw new Error(`fixture: could not rewrite the checksum of ${module}@${entry.version}`);
    }
    record(this.modules, module, entry.version, { checksum, size, line: out });
    return out;
  }

  extraLine(extra: ExtraModule, createdAt: string): string {
    const { checksum, size } = this.archive(extra.module, extra.version);
    const line = formatIndexLine({
      name: extra.module,
      version: extra.version,
      deps: extra.deps,
      ...extra.fields,
      checksum,
      created_at: createdAt,
    });
    record(this.modules, extra.module, extra.version, { checksum, size, line });
    return line;
  }
}

async function generate(root: string, plan: BuildPlan): Promise<void> {
  const gitDir = path.join(root, 'git');
  const archivesDir = path.join(root, 'archives');
  await fs.mkdir(archivesDir, { recursive: true });
  // A bare clone and fast-import: no checkout, no `git add`, and the new objects land in one pack.
  await git(['clone', '-q', '--bare', '-b', 'main', bundlePath, gitDir]);
  const g = (args: string[], input?: string | Buffer) => git(['--git-dir', gitDir, ...args], { input });
  await g(['remote', 'remove', 'origin']);
  await g(['config', 'gc.auto', '0']);
  const generator = new Generator(plan, new ArchiveStore(archivesDir));
  const files = await readIndexBlobs(gitDir);
  const changes: FileChange[] = [];
  for (const [module, raw] of files) {
    const keep = !plan.keep || plan.keep(module);
    changes.push({ file: indexFilePath(module), content: keep ? generator.rewriteIndex(module, raw) : null });
  }
  for (const extra of plan.extraModules) {
    const file = indexFilePath(extra.module);
    const previous = changes.find((change) => change.file === file);
    const line = generator.extraLine(extra, EXTRA_CREATED_AT);
    if (previous) previous.content = appendLines(previous.content ?? '', [line]);
    else changes.push({ file, content: appendLines('', [line]) });
  }
  const message = `fixture: synthetic archives (flavor ${plan.flavor})`;
  await g(['fast-import', '--quiet'], fastImportStream(message, FIXTURE_EPOCH, changes));
  await g(['pack-refs', '--all']);
  await writeManifest(root, plan.flavor, generator.modules);
}

interface FileChange {
  file: string;
  /** null deletes the file. */
  content: string | null;
}

/** module -> raw index text at the tip of `main`, read in one `cat-file --batch`. */
async function readIndexBlobs(gitDir: string): Promise<Map<string, string>> {
  const listing = await git(['--git-dir', gitDir, 'ls-tree', '-r', '-z', 'main', '--', 'user/']);
  const blobs: Array<{ module: string; sha: string }> = [];
  for (const record of listing.split('\0')) {
    const match = /^\d+ blob ([0-9a-f]+)\tuser\/(.+)\.index$/s.exec(record);
    if (match?.[1] && match[2]) blobs.push({ sha: match[1], module: match[2] });
  }
  blobs.sort((a, b) => compareCodePoints(a.module, b.module));
  const input = blobs.map((blob) => `${blob.sha}\n`).join('');
  const out = await gitBuffer(['--git-dir', gitDir, 'cat-file', '--batch'], { input });
  const files = new Map<string, string>();
  let offset = 0;
  for (const blob of blobs) {
    const headerEnd = out.indexOf(0x0a, offset);
    const size = Number(out.toString('latin1', offset, headerEnd).split(' ')[2]);
    files.set(blob.module, out.toString('utf8', headerEnd + 1, headerEnd + 1 + size));
    offset = headerEnd + 1 + size + 1; // content is followed by a newline
  }
  return files;
}

/** One commit on top of `main`; `from refs/heads/main^0` makes fast-import build on the existing tip. */
function fastImportStream(message: string, epoch: number, changes: FileChange[]): Buffer {
  const who = `fixture <fixture@example.invalid> ${epoch} +0000`;
  const parts: Buffer[] = [
    Buffer.from(`commit refs/heads/main\nauthor ${who}\ncommitter ${who}\n`),
    dataBlock(message),
    Buffer.from('from refs/heads/main^0\n'),
  ];
  for (const change of changes) {
    const quoted = quotePath(change.file);
    if (change.content === null) {
      parts.push(Buffer.from(`D ${quoted}\n`));
    } else {
      parts.push(Buffer.from(`M 100644 inline ${quoted}\n`), dataBlock(change.content));
    }
  }
  parts.push(Buffer.from('\n'));
  return Buffer.concat(parts);
}

function dataBlock(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from(`data ${bytes.length}\n`), bytes, Buffer.from('\n')]);
}

/** fast-import reads a path up to the line end unless it starts with a quote; quote odd ones. */
function quotePath(file: string): string {
  return /^["]|[\n\\]/.test(file) ? JSON.stringify(file) : file;
}

function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function appendLines(content: string, lines: string[]): string {
  const head = content === '' || content.endsWith('\n') ? content : `${content}\n`;
  return `${head}${lines.map((line) => `${line}\n`).join('')}`;
}

async function readOr(file: string, fallback: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch {
    return fallback;
  }
}

function identityEnv(date: string): NodeJS.ProcessEnv {
  return {
    GIT_AUTHOR_NAME: 'fixture',
    GIT_AUTHOR_EMAIL: 'fixture@example.invalid',
    GIT_COMMITTER_NAME: 'fixture',
    GIT_COMMITTER_EMAIL: 'fixture@example.invalid',
    GIT_AUTHOR_DATE: date,
    GIT_COMMITTER_DATE: date,
  };
}

async function writeManifest(root: string, flavor: string, modules: ModuleVersions): Promise<void> {
  const manifest: Manifest = {
    generator: GENERATOR_VERSION,
    flavor,
    modules: [...modules].map(([module, versions]) => [module, [...versions]]),
  };
  await fs.writeFile(path.join(root, 'manifest.json'), JSON.stringify(manifest));
}

async function readManifest(root: string): Promise<Manifest> {
  return JSON.parse(await fs.readFile(path.join(root, 'manifest.json'), 'utf8')) as Manifest;
}

// ---------------------------------------------------------------------------------------------
// Cache

async function bundleKey(): Promise<string> {
  const stat = await fs.stat(bundlePath);
  return `${stat.size}-${Math.trunc(stat.mtimeMs)}`;
}

function shortHash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 20);
}

/**
 * A filter is a function, so its source says nothing about what it keeps (closures): the key
 * uses the list of modules it actually keeps instead.
 */
async function cacheKey(plan: BuildPlan, opts: FixtureOptions): Promise<string> {
  const kept = plan.keep ? (await bundleModules()).filter(plan.keep) : 'all';
  return shortHash({
    generator: GENERATOR_VERSION,
    bundle: await bundleKey(),
    flavor: plan.flavor,
    kept: typeof kept === 'string' ? kept : shortHash(kept),
    extra: opts.extraModules ?? [],
    overrides: [...plan.overrides].sort(),
  });
}

/** The modules in the bundle's `main`, cached next to the fixtures. */
export async function bundleModules(): Promise<string[]> {
  const file = path.join(cacheRoot, `modules-${await bundleKey()}-${GENERATOR_VERSION}.json`);
  const cached = await readOr(file, '');
  if (cached) return JSON.parse(cached) as string[];
  const tmp = await makeBuildDir('modules');
  try {
    await git(['clone', '-q', '--bare', bundlePath, tmp]);
    const out = await git(['--git-dir', tmp, 'ls-tree', '-r', '-z', '--name-only', 'main', '--', 'user/']);
    const modules = out
      .split('\0')
      .filter((name) => name.endsWith('.index'))
      .map((name) => name.slice('user/'.length, -'.index'.length))
      .sort(compareCodePoints);
    await fs.writeFile(`${tmp}.json`, JSON.stringify(modules));
    await fs.rename(`${tmp}.json`, file);
    return modules;
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/** Builds in a temp dir and renames it into place, so a killed build never leaves a half cache. */
async function ensureCached(plan: BuildPlan, opts: FixtureOptions): Promise<string> {
  const target = path.join(cacheRoot, await cacheKey(plan, opts));
  if (await exists(path.join(target, 'manifest.json'))) return target;
  await removeStaleBuilds();
  const tmp = await makeBuildDir('build');
  try {
    await generate(tmp, plan);
    await fs.rename(tmp, target);
  } catch (error) {
    await fs.rm(tmp, { recursive: true, force: true });
    // Another process may have finished the same build first; its result is as good as ours.
    if (!(await exists(path.join(target, 'manifest.json')))) throw error;
  }
  return target;
}

async function makeBuildDir(kind: string): Promise<string> {
  await fs.mkdir(cacheRoot, { recursive: true });
  return path.join(cacheRoot, `.tmp-${kind}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** Leftovers of killed builds; an hour is far longer than any live build takes. */
async function removeStaleBuilds(): Promise<void> {
  const entries = await fs.readdir(cacheRoot).catch(() => [] as string[]);
  for (const entry of entries.filter((name) => name.startsWith('.tmp-'))) {
    const full = path.join(cacheRoot, entry);
    const stat = await fs.stat(full).catch(() => undefined);
    if (stat && Date.now() - stat.mtimeMs > 3_600_000) await fs.rm(full, { recursive: true, force: true });
  }
}

/**
 * Archives may be hardlinks into the cache: an existing name already holds these bytes (names
 * are hashes), and a new one is written aside and renamed so no reader sees a partial file.
 */
async function writeNewFile(file: string, data: Buffer): Promise<void> {
  if (await exists(file)) return;
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  await fs.writeFile(tmp, data);
  await fs.rename(tmp, file);
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

async function makeInstanceDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'moonbit-fixture-'));
}

/** A private copy: the repo is copied (a few pack files), archives are hardlinked (immutable). */
async function instantiate(cached: string): Promise<Fixture> {
  const dir = await makeInstanceDir();
  await fs.cp(path.join(cached, 'git'), path.join(dir, 'git'), { recursive: true });
  await linkTree(path.join(cached, 'archives'), path.join(dir, 'archives'));
  await fs.copyFile(path.join(cached, 'manifest.json'), path.join(dir, 'manifest.json'));
  return openFixture(dir);
}

async function linkTree(from: string, to: string): Promise<void> {
  await fs.mkdir(to, { recursive: true });
  const names = await fs.readdir(from);
  const link = async (name: string) => {
    const src = path.join(from, name);
    const dst = path.join(to, name);
    await fs.link(src, dst).catch(() => fs.copyFile(src, dst));
  };
  for (let i = 0; i < names.length; i += 256) await Promise.all(names.slice(i, i + 256).map(link));
}

// ---------------------------------------------------------------------------------------------
// Instances

async function openFixture(dir: string): Promise<Fixture> {
  const manifest = await readManifest(dir);
  const modules: ModuleVersions = new Map(manifest.modules.map(([m, versions]) => [m, new Map(versions)]));
  return new FixtureInstance(dir, manifest.flavor, modules);
}

class FixtureInstance implements Fixture {
  readonly gitDir: string;
  readonly archivesDir: string;
  /** Serializes commits: each reads `main` and moves it forward. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly dir: string,
    readonly flavor: string,
    readonly modules: ModuleVersions,
  ) {
    this.gitDir = path.join(dir, 'git');
    this.archivesDir = path.join(dir, 'archives');
  }

  archivePath(checksum: string): string {
    return path.join(this.archivesDir, `${checksum}.zip`);
  }

  archiveFor(module: string, version: string): Buffer | undefined {
    const info = this.modules.get(module)?.get(version);
    if (!info) return undefined;
    try {
      return readFileSync(this.archivePath(info.checksum));
    } catch {
      return undefined;
    }
  }

  async addVersion(module: string, version: string, deps?: Record<string, DepSpec>): Promise<ArchiveInfo> {
    const archive = makeArchive(module, version, archiveMarker(this.flavor));
    const checksum = sha256Hex(archive);
    await writeNewFile(this.archivePath(checksum), archive);
    const line = formatIndexLine({ name: module, version, deps, checksum, created_at: pythonTimestamp() });
    await this.appendIndexLines(module, [line]);
    const info = { checksum, size: archive.length, line };
    record(this.modules, module, version, info);
    return info;
  }

  appendIndexLines(module: string, lines: string[]): Promise<string> {
    return this.serialized(async () => {
      const file = indexFilePath(module);
      const current = await this.git(['cat-file', 'blob', `refs/heads/main:${file}`]).catch(() => '');
      return this.commitNow({ [file]: appendLines(current, lines) }, `publish ${module}`);
    });
  }

  commitFiles(files: Record<string, string | null>, message: string): Promise<string> {
    return this.serialized(() => this.commitNow(files, message));
  }

  commitRawEntries(entries: RawTreeEntry[], message: string): Promise<string> {
    return this.serialized(() => this.commitRawNow(entries, message));
  }

  async headCommit(): Promise<string> {
    return (await this.git(['rev-parse', 'refs/heads/main'])).trim();
  }

  async cleanup(): Promise<void> {
    await fs.rm(this.dir, { recursive: true, force: true });
  }

  private serialized<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job, job);
    this.queue = run.catch(() => {});
    return run;
  }

  private git(args: string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<string> {
    return git(['--git-dir', this.gitDir, ...args], { env, input });
  }

  /**
   * Builds each tree object itself and stores it with `hash-object --literally`, so that no git
   * check (path verification, fsck) stands between a test and the entries it wants upstream.
   */
  private async commitRawNow(entries: RawTreeEntry[], message: string): Promise<string> {
    const env = identityEnv(new Date().toISOString());
    const parent = await this.headCommit();
    let root = (await this.git(['rev-parse', `${parent}^{tree}`])).trim();
    for (const entry of entries) {
      if (entry.path.length === 0) throw new Error('commitRawEntries: an entry needs a path');
      const oid =
        entry.oid ??
        (
          await git(['--git-dir', this.gitDir, 'hash-object', '-w', '--stdin'], {
            input: entry.content ?? '',
          })
        ).trim();
      root = await this.insertRaw(root, entry.path, entry.mode, oid);
    }
    const commit = (await this.git(['commit-tree', root, '-p', parent, '-m', message], env)).trim();
    await this.git(['update-ref', 'refs/heads/main', commit, parent], env);
    return commit;
  }

  /** `tree` with `names` (one per level) set to mode/oid; returns the new tree's id. */
  private async insertRaw(
    tree: string | undefined,
    names: string[],
    mode: string,
    oid: string,
  ): Promise<string> {
    const [first, ...rest] = names as [string, ...string[]];
    const name = Buffer.from(first, 'utf8');
    const items = tree
      ? parseRawTree(await gitBuffer(['--git-dir', this.gitDir, 'cat-file', 'tree', tree]))
      : [];
    const existing = items.find((item) => item.name.equals(name));
    const others = items.filter((item) => item !== existing);
    const inserted: RawTreeItem =
      rest.length === 0
        ? { mode, name, oid: Buffer.from(oid, 'hex') }
        : {
            mode: '40000',
            name,
            oid: Buffer.from(
              await this.insertRaw(
                existing?.mode === '40000' ? existing.oid.toString('hex') : undefined,
                rest,
                mode,
                oid,
              ),
              'hex',
            ),
          };
    const sorted = [...others, inserted].sort(treeOrder);
    const body = Buffer.concat(
      sorted.flatMap((item) => [Buffer.from(`${item.mode} `), item.name, Buffer.from([0]), item.oid]),
    );
    const args = ['--git-dir', this.gitDir, 'hash-object', '-t', 'tree', '--literally', '-w', '--stdin'];
    return (await git(args, { input: body })).trim();
  }

  /** Plumbing on a private index file: a bare repo has no work tree to commit from. */
  private async commitNow(files: Record<string, string | null>, message: string): Promise<string> {
    const indexFile = path.join(this.dir, `index-${randomBytes(4).toString('hex')}`);
    const env = { ...identityEnv(new Date().toISOString()), GIT_INDEX_FILE: indexFile };
    try {
      const parent = await this.headCommit();
      await this.git(['read-tree', parent], env);
      for (const [file, content] of Object.entries(files)) {
        if (content === null) {
          await this.git(['update-index', '--force-remove', '--', file], env);
          continue;
        }
        const blob = (await this.git(['hash-object', '-w', '--stdin'], env, content)).trim();
        await this.git(['update-index', '--add', '--cacheinfo', `100644,${blob},${file}`], env);
      }
      const tree = (await this.git(['write-tree'], env)).trim();
      const commit = (await this.git(['commit-tree', tree, '-p', parent, '-m', message], env)).trim();
      await this.git(['update-ref', 'refs/heads/main', commit, parent], env);
      return commit;
    } finally {
      await fs.rm(indexFile, { force: true });
    }
  }
}

/** One entry of a raw tree object: `<mode> <name>\0<binary oid>`. */
interface RawTreeItem {
  mode: string;
  name: Buffer;
  oid: Buffer;
}

/** Parses the binary form of a tree (as `git cat-file tree` prints it). */
function parseRawTree(data: Buffer): RawTreeItem[] {
  const items: RawTreeItem[] = [];
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    const nul = data.indexOf(0, space);
    const mode = data.toString('latin1', offset, space);
    const name = data.subarray(space + 1, nul);
    items.push({ mode, name, oid: data.subarray(nul + 1, nul + 21) });
    offset = nul + 21;
  }
  return items;
}

/** git's tree order: names compared as bytes, a tree's name as if it ended with `/`. */
function treeOrder(a: RawTreeItem, b: RawTreeItem): number {
  const key = (item: RawTreeItem) =>
    item.mode === '40000' ? Buffer.concat([item.name, Buffer.from('/')]) : item.name;
  return Buffer.compare(key(a), key(b));
}

/** The checksum a fixture published for module@version (throws if it has none). */
export function checksumIn(fixture: Fixture, module: string, version: string): string {
  const info = fixture.modules.get(module)?.get(version);
  if (!info) throw new Error(`${module}@${version} is not in the ${fixture.flavor} fixture`);
  return info.checksum;
}

/** The archive bytes a fixture serves for module@version (throws if it has none). */
export function bytesIn(fixture: Fixture, module: string, version: string): Buffer {
  const bytes = fixture.archiveFor(module, version);
  if (!bytes) throw new Error(`no archive for ${module}@${version}`);
  return bytes;
}
