/**
 * Does what the `moon` client does against a registry (PROTOCOL.md): index update over git,
 * lenient index reading, minimal version selection, checksum-verified archive downloads.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import path from 'node:path';
import { unzipSync } from 'fflate';
import semver from 'semver';
import { Agent, fetch as undiciFetch } from 'undici';
import { git } from './git.js';

export type DepSpec = string | { version?: unknown; path?: unknown; alias?: unknown };

export interface ClientOptions {
  /** Passed as `-c protocol.version=N`; git's default (2) when absent. */
  protocolVersion?: 0 | 1 | 2;
  /** Sent with every git and archive request, e.g. `{ Authorization: 'Bearer t' }`. */
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Extra environment for git, e.g. GIT_SSL_CAINFO for a test certificate. */
  env?: NodeJS.ProcessEnv;
}

export type UpdateAction = 'clone' | 'pull' | 'reclone';

export interface UpdateResult {
  action: UpdateAction;
  indexDir: string;
  /** Why the pull failed, when the client fell back to a fresh clone. */
  pullError?: string;
  symbols: SymbolsUpdate;
}

/**
 * What the symbols step of `moon update` did: the HTTP status it got (200: unpacked, 304: kept)
 * and the ETag it keeps, or the warning moon prints (a failure never fails the update).
 */
export interface SymbolsUpdate {
  status?: number;
  /** The If-None-Match sent, if any. */
  sent?: string;
  etag?: string;
  warning?: string;
}

export function indexUrlOf(registryUrl: string): string {
  return `${registryUrl.replace(/\/+$/, '')}/git/index`;
}

export function indexDirOf(moonHome: string): string {
  return path.join(moonHome, 'registry', 'index');
}

// ---------------------------------------------------------------------------------------------
// moon update

/** `moon update`: clone the first time, pull later; a failed pull or a foreign clone means re-clone. */
export async function update(
  registryUrl: string,
  moonHome: string,
  opts: ClientOptions = {},
): Promise<UpdateResult> {
  const index = await updateIndex(registryUrl, moonHome, opts);
  // moon fetches the symbols after every index update (PROTOCOL.md 5, mooncake/src/update.rs).
  return { ...index, symbols: await updateSymbols(registryUrl, moonHome, opts) };
}

async function updateIndex(
  registryUrl: string,
  moonHome: string,
  opts: ClientOptions,
): Promise<Omit<UpdateResult, 'symbols'>> {
  const url = indexUrlOf(registryUrl);
  const indexDir = indexDirOf(moonHome);
  if (!(await exists(indexDir))) {
    await cloneIndex(url, indexDir, opts);
    return { action: 'clone', indexDir };
  }
  let pullError = 'not a clone of this registry';
  if (await isCloneOf(indexDir, url)) {
    try {
      await git([...configArgs(opts), '-C', indexDir, 'pull', 'origin', 'main'], gitOptions(opts));
      return { action: 'pull', indexDir };
    } catch (error) {
      pullError = error instanceof Error ? error.message : String(error);
    }
  }
  await fs.rm(indexDir, { recursive: true, force: true });
  await cloneIndex(url, indexDir, opts);
  return { action: 'reclone', indexDir, pullError };
}

export function symbolsDirOf(moonHome: string): string {
  return path.join(moonHome, 'registry', 'symbols');
}

/** Where moon keeps the symbols ETag (with the URL it belongs to) between updates. */
function updateStatePath(moonHome: string): string {
  return path.join(moonHome, 'registry', '.registry-update-state.json');
}

/**
 * GET R/symbols.zip with If-None-Match (the ETag kept for this very URL, and only while the
 * unpacked symbols are there); 304 keeps them, 200 unpacks the zip into a temp folder that then
 * replaces registry/symbols. Any failure is a warning, as moon prints it.
 */
export async function updateSymbols(
  registryUrl: string,
  moonHome: string,
  opts: ClientOptions = {},
): Promise<SymbolsUpdate> {
  const { url, headers } = credentialsFromUrl(`${registryUrl.replace(/\/+$/, '')}/symbols.zip`);
  const dir = symbolsDirOf(moonHome);
  const statePath = updateStatePath(moonHome);
  const state = await fs
    .readFile(statePath, 'utf8')
    .then((text) => JSON.parse(text) as { symbols_etag?: { url: string; value: string } })
    .catch(() => ({}) as { symbols_etag?: { url: string; value: string } });
  const known = state.symbols_etag?.url === url && (await exists(dir)) ? state.symbols_etag.value : undefined;
  const result: SymbolsUpdate = known ? { sent: known } : {};
  try {
    const res = await fetch(url, {
      headers: {
        'User-Agent': USER_AGENT,
        ...headers,
        ...opts.headers,
        ...(known ? { 'If-None-Match': known } : {}),
      },
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    result.status = res.status;
    const etag = res.headers.get('etag') ?? undefined;
    if (res.status === 304 && known) {
      result.etag = etag ?? known;
    } else if (res.ok) {
      const files = unzipSync(new Uint8Array(await res.arrayBuffer()));
      const tmp = `${dir}.tmp-${randomBytes(4).toString('hex')}`;
      for (const [name, bytes] of Object.entries(files)) {
        if (name.endsWith('/')) continue;
        await fs.mkdir(path.dirname(path.join(tmp, name)), { recursive: true });
        await fs.writeFile(path.join(tmp, name), bytes);
      }
      await fs.mkdir(tmp, { recursive: true });
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rename(tmp, dir);
      result.etag = etag;
    } else {
      await res.body?.cancel();
      throw new Error(`symbols.zip download returned error status ${res.status}`);
    }
    const next = result.etag ? { symbols_etag: { url, value: result.etag } } : {};
    await fs.writeFile(statePath, JSON.stringify(next));
  } catch (error) {
    result.warning = `failed to update symbols: ${error instanceof Error ? error.message : String(error)}`;
  }
  return result;
}

/** Shallow clone into a temporary sibling, then rename: an interrupted clone leaves no index. */
async function cloneIndex(url: string, indexDir: string, opts: ClientOptions): Promise<void> {
  await fs.mkdir(path.dirname(indexDir), { recursive: true });
  const tmp = `${indexDir}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await git(
      [...configArgs(opts), 'clone', '--depth', '1', '--single-branch', '--no-tags', url, tmp],
      gitOptions(opts),
    );
    await fs.rename(tmp, indexDir);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

async function isCloneOf(dir: string, url: string): Promise<boolean> {
  try {
    const top = (await git(['-C', dir, 'rev-parse', '--show-toplevel'])).trim();
    if ((await fs.realpath(top)) !== (await fs.realpath(dir))) return false;
    return (await git(['-C', dir, 'remote', 'get-url', 'origin'])).trim() === url;
  } catch {
    return false;
  }
}

function configArgs(opts: ClientOptions): string[] {
  const args: string[] = [];
  if (opts.protocolVersion !== undefined) args.push('-c', `protocol.version=${opts.protocolVersion}`);
  for (const [name, value] of Object.entries(opts.headers ?? {}))
    args.push('-c', `http.extraHeader=${name}: ${value}`);
  return args;
}

function gitOptions(opts: ClientOptions): { timeoutMs: number; env?: NodeJS.ProcessEnv } {
  return { timeoutMs: opts.timeoutMs ?? 60_000, ...(opts.env ? { env: opts.env } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Reading the index

export interface IndexEntry {
  module: string;
  version: string;
  checksum: string | undefined;
  deps: Record<string, DepSpec>;
  /** The whole parsed line. */
  fields: Record<string, unknown>;
}

export interface RegistryIndex {
  /** module -> version -> entry; the last line for a version wins. */
  modules: Map<string, Map<string, IndexEntry>>;
  /** Lines that did not parse (moon warns and skips them). */
  skippedLines: number;
}

/**
 * A registry's served index as moon reads it: a clone of `data/<repo>` (`index`, or
 * `proxy-index`) into `cloneDir`, then read like a client's work tree.
 */
export async function readServedIndex(
  root: string,
  cloneDir: string,
  repo = 'index',
): Promise<RegistryIndex> {
  await git(['clone', '-q', path.join(root, 'data', repo), cloneDir]);
  if (!(await exists(path.join(cloneDir, 'user')))) return { modules: new Map(), skippedLines: 0 };
  return readIndexDir(cloneDir);
}

export function readIndex(moonHome: string): Promise<RegistryIndex> {
  return readIndexDir(indexDirOf(moonHome));
}

/** Reads `user/**\/*.index` under an index work tree, leniently. */
export async function readIndexDir(dir: string): Promise<RegistryIndex> {
  const userDir = path.join(dir, 'user');
  const files = (await fs.readdir(userDir, { recursive: true })).filter((f) => f.endsWith('.index'));
  const index: RegistryIndex = { modules: new Map(), skippedLines: 0 };
  for (const file of files) {
    const module = file.slice(0, -'.index'.length).split(path.sep).join('/');
    const versions = new Map<string, IndexEntry>();
    for (const line of (await fs.readFile(path.join(userDir, file), 'utf8')).split('\n')) {
      if (line.trim() === '') continue;
      const entry = parseEntry(module, line);
      if (entry) versions.set(entry.version, entry);
      else index.skippedLines++;
    }
    if (versions.size > 0) index.modules.set(module, versions);
  }
  return index;
}

function parseEntry(module: string, line: string): IndexEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const fields = value as Record<string, unknown>;
  if (typeof fields.version !== 'string') return undefined;
  const deps =
    fields.deps !== null && typeof fields.deps === 'object' ? (fields.deps as Record<string, DepSpec>) : {};
  const checksum = typeof fields.checksum === 'string' ? fields.checksum : undefined;
  return { module, version: fields.version, checksum, deps, fields };
}

// ---------------------------------------------------------------------------------------------
// Version selection

export class ResolveError extends Error {
  override name = 'ResolveError';
}

/** All versions below 2.0.0 are one compatibility set; from 2 up, each major is its own. */
export function compatSet(version: string): number {
  const major = semver.major(version);
  return major < 2 ? 0 : major;
}

/**
 * The minimum version a requirement asks for, or undefined for path-only deps. The real index
 * also holds `^0.0.4`, `0.16` and `*`: operators are dropped and partial versions completed.
 */
export function requiredVersion(spec: DepSpec): string | undefined {
  const raw = typeof spec === 'string' ? spec : typeof spec.version === 'string' ? spec.version : undefined;
  if (raw === undefined) return undefined;
  const text = raw.trim().replace(/^[\^~=>v\s]+/, '');
  if (text === '' || text === '*') return '0.0.0';
  const version = semver.valid(text) ?? semver.coerce(text)?.version;
  if (!version) throw new ResolveError(`cannot read version requirement "${raw}"`);
  return version;
}

/** The smallest version of `module` that is >= `min` in the same compatibility set. */
export function pickMinimal(index: RegistryIndex, module: string, min: string, requiredBy = 'root'): string {
  const versions = index.modules.get(module);
  if (!versions) throw new ResolveError(`${module} (required by ${requiredBy}) is not in the index`);
  const candidates = [...versions.keys()]
    .filter((v) => semver.valid(v) && compatSet(v) === compatSet(min) && semver.gte(v, min))
    .sort(semver.compareBuild);
  const chosen = candidates[0];
  if (!chosen) throw new ResolveError(`no version of ${module} >= ${min} (required by ${requiredBy})`);
  return chosen;
}

/**
 * Minimal version selection: each requirement picks its smallest match, requirements of every
 * picked version are followed, and a module ends at the greatest of its picks.
 */
export function resolve(index: RegistryIndex, rootDeps: Record<string, DepSpec>): Map<string, string> {
  const selected = new Map<string, string>();
  const visited = new Set<string>();
  const queue: Array<[string, string]> = [];
  const require = (module: string, spec: DepSpec, requiredBy: string) => {
    const min = requiredVersion(spec);
    if (min === undefined) return;
    const version = pickMinimal(index, module, min, requiredBy);
    const current = selected.get(module);
    if (current === undefined || semver.compareBuild(version, current) > 0) selected.set(module, version);
    const key = `${module}@${version}`;
    if (!visited.has(key)) {
      visited.add(key);
      queue.push([module, version]);
    }
  };
  for (const [module, spec] of Object.entries(rootDeps)) require(module, spec, 'root');
  for (let next = queue.shift(); next; next = queue.shift()) {
    const [module, version] = next;
    const deps = index.modules.get(module)?.get(version)?.deps ?? {};
    for (const [dep, spec] of Object.entries(deps)) require(dep, spec, `${module}@${version}`);
  }
  return new Map([...selected].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** What `moon add m` picks: the greatest version in the index. */
export function latest(index: RegistryIndex, module: string): string | undefined {
  const versions = [...(index.modules.get(module)?.keys() ?? [])].filter((v) => semver.valid(v));
  return versions.sort(semver.compareBuild).at(-1);
}

// ---------------------------------------------------------------------------------------------
// Archives

export const USER_AGENT = 'mooncake/0.1.0';

/** Form-urlencoding of `module/version`, as moon does: `/` -> %2F, `+` -> %2B. */
export function archiveUrl(
  registryUrl: string,
  module: string,
  version: string,
  literalSlashes = false,
): string {
  const base = registryUrl.replace(/\/+$/, '');
  if (literalSlashes) return `${base}/user/${module}/${version}.zip`;
  const encoded = new URLSearchParams({ k: `${module}/${version}` }).toString().slice('k='.length);
  return `${base}/user/${encoded}.zip`;
}

export interface DownloadOptions {
  headers?: Record<string, string>;
  literalSlashes?: boolean;
  timeoutMs?: number;
  /** A CA certificate to trust (a test server's self-signed one). */
  ca?: string | Buffer;
}

/**
 * What reqwest (moon's HTTP client) does with `user:password@` in a URL: its RequestBuilder
 * takes the percent-decoded user info out of the URL and sends it at once as
 * `Authorization: Basic`, without waiting for a 401 (reqwest `extract_authority`).
 */
export function credentialsFromUrl(url: string): { url: string; headers: Record<string, string> } {
  const parsed = new URL(url);
  if (parsed.username === '' && parsed.password === '') return { url, headers: {} };
  const user = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  parsed.username = '';
  parsed.password = '';
  const basic = Buffer.from(`${user}:${password}`).toString('base64');
  return { url: parsed.toString(), headers: { Authorization: `Basic ${basic}` } };
}

/** GET the archive; any non-2xx fails, and the bytes must hash to the index checksum. */
export async function download(
  registryUrl: string,
  module: string,
  version: string,
  expectedChecksum: string,
  opts: DownloadOptions = {},
): Promise<Buffer> {
  const { url, headers } = credentialsFromUrl(archiveUrl(registryUrl, module, version, opts.literalSlashes));
  const init = {
    headers: { 'User-Agent': USER_AGENT, ...headers, ...opts.headers },
    signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
  };
  const res = opts.ca
    ? await undiciFetch(url, { ...init, dispatcher: new Agent({ connect: { ca: opts.ca } }) })
    : await fetch(url, init);
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`Failed to download ${module}@${version}: HTTP ${res.status}`);
  }
  const bytes = Buffer.from(await res.arrayBuffer());
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== expectedChecksum) {
    throw new Error(
      `Checksum mismatch for ${module}@${version}: expected ${expectedChecksum}, got ${actual}`,
    );
  }
  return bytes;
}

export interface Installed {
  version: string;
  bytes: Buffer;
}

/** Resolve from the local index clone and download every selected module, like a build would. */
export async function install(
  registryUrl: string,
  moonHome: string,
  rootDeps: Record<string, DepSpec>,
  opts: DownloadOptions = {},
): Promise<Map<string, Installed>> {
  const index = await readIndex(moonHome);
  const installed = new Map<string, Installed>();
  for (const [module, version] of resolve(index, rootDeps)) {
    const checksum = index.modules.get(module)?.get(version)?.checksum;
    if (!checksum) throw new Error(`${module}@${version} has no checksum in the index`);
    installed.set(module, { version, bytes: await download(registryUrl, module, version, checksum, opts) });
  }
  return installed;
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

/**
 * What `moonx` / `moon run <module>/<package>` does for a registry tool on the wasm target
 * (PROTOCOL.md 5): fetch `<name>.wasm` and `<name>.wasm.sha256` from the registry and check the
 * hash; `packagePath` [] is the module's root package. Throws on a 404 (no prebuilt asset), any
 * other failure, or a mismatch.
 */
export async function installTool(
  registryUrl: string,
  module: string,
  version: string,
  packagePath: string[],
  opts: DownloadOptions = {},
): Promise<Buffer> {
  const last = packagePath.at(-1) ?? (module.split('/').at(-1) as string);
  const base = `${registryUrl.replace(/\/+$/, '')}/assets/${module}@${version}`;
  const wasmUrl = [base, ...packagePath, `${last}.wasm`].join('/');
  const get = async (url: string): Promise<Buffer> => {
    const res = await fetch(url, {
      headers: { 'User-Agent': USER_AGENT, ...opts.headers },
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`Failed to fetch ${url}: HTTP ${res.status}`);
    }
    return Buffer.from(await res.arrayBuffer());
  };
  const [wasm, sha] = await Promise.all([get(wasmUrl), get(`${wasmUrl}.sha256`)]);
  const expected = /^([0-9a-f]{64})\s/.exec(sha.toString('utf8'))?.[1];
  const actual = createHash('sha256').update(wasm).digest('hex');
  if (expected !== actual) {
    throw new Error(`Checksum mismatch for ${wasmUrl}: .sha256 says ${expected}, got ${actual}`);
  }
  return wasm;
}
