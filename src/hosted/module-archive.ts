import type { Readable } from 'node:stream';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { sha256Hex } from '../core/checksum.js';
import { RegistryError } from '../core/errors.js';
import { hasLoneSurrogate, jsonShapeProblem } from '../core/json-text.js';
import { quoteForLog } from '../core/log-text.js';
import { isPublishableModuleName } from '../core/module-name.js';
import { foldedPath, portableSegmentProblem } from '../core/portable-path.js';
import { isValidVersion } from '../core/version.js';

/** What a published zip may cost (`[hosted]` limits). */
export interface ArchiveLimits {
  /** Bytes of the zip itself (413 beyond). */
  maxBytes: number;
  /** Files and folders in it. */
  maxEntries: number;
  /** Bytes it unpacks to, declared and actual (zip bombs). */
  maxUncompressed: number;
}

/** A module zip that passed every check: what its moon.mod.json says, and its checksum. */
export interface ModuleArchive {
  module: string;
  version: string;
  /** moon.mod.json as written, every key kept (the index line is made from it). */
  manifest: Record<string, unknown>;
  checksum: string;
  bytes: number;
}

const MANIFEST = 'moon.mod.json';
/** moon.mod.json is a small file; a bigger one is not a module description. */
const MAX_MANIFEST_BYTES = 1024 * 1024;
/** moon.mod.json nests a few levels (deps, targets); deeper is no manifest but a trap. */
const MAX_MANIFEST_DEPTH = 32;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/**
 * Checks an uploaded module zip as `moon package` makes it: moon.mod.json at the root naming a
 * valid module and a semver version, and nothing a client unpacking it could be hurt by: no
 * entry outside the root (`..`, absolute paths, drive letters, backslashes), no symlinks, no
 * duplicates, and no more entries or unpacked bytes than the limits allow, counted as declared
 * and again as actually inflated. Throws RegistryError `TOO_LARGE` or `INVALID` saying what is
 * wrong.
 */
export async function checkModuleArchive(bytes: Buffer, limits: ArchiveLimits): Promise<ModuleArchive> {
  if (bytes.length > limits.maxBytes) {
    throw new RegistryError(
      'TOO_LARGE',
      `the archive has ${bytes.length} bytes; this registry takes at most ${limits.maxBytes}`,
    );
  }
  const zip = await openZip(bytes);
  try {
    if (zip.entryCount > limits.maxEntries) {
      throw invalid(`${zip.entryCount} entries; this registry takes at most ${limits.maxEntries}`);
    }
    const paths = new EntryPaths();
    let declared = 0;
    let inflated = 0;
    let manifestBytes: Buffer | undefined;
    for await (const entry of entries(zip)) {
      const name = await entryName(zip, entry);
      checkEntryName(name);
      const mode = (entry.externalFileAttributes >>> 16) & S_IFMT;
      if (mode === S_IFLNK) throw invalid(`${quoteForLog(name)} is a symbolic link`);
      paths.add(name);
      declared += entry.uncompressedSize;
      if (declared > limits.maxUncompressed) throw bomb(limits);
      if (name.endsWith('/')) continue;
      const wanted = name === MANIFEST;
      if (wanted && entry.uncompressedSize > MAX_MANIFEST_BYTES) throw invalid(`${MANIFEST} is too large`);
      const content = await readEntry(zip, entry, wanted, (n) => {
        inflated += n;
        if (inflated > limits.maxUncompressed) throw bomb(limits);
      });
      if (wanted) manifestBytes = content;
    }
    if (manifestBytes === undefined) throw invalid(`no ${MANIFEST} at the root of the zip`);
    return { ...readManifest(manifestBytes), checksum: sha256Hex(bytes), bytes: bytes.length };
  } finally {
    zip.close();
  }
}

function invalid(reason: string): RegistryError {
  return new RegistryError('INVALID', `bad archive: ${reason}`);
}

function bomb(limits: ArchiveLimits): RegistryError {
  return invalid(`it unpacks to more than ${limits.maxUncompressed} bytes`);
}

/** Entry names as a client would write them to disk: only plain relative paths inside the root. */
function checkEntryName(name: string): void {
  const bad = (why: string) => invalid(`entry ${quoteForLog(name)} ${why}`);
  if (name === '' || name.includes('\0')) throw bad('has no usable name');
  if (name.includes('\\')) throw bad('contains a backslash');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw bad('is an absolute path');
  const segments = name.replace(/\/$/, '').split('/');
  if (segments.some((s) => s === '..' || s === '.' || s === '')) throw bad('leaves or hides in the root');
  for (const segment of segments) {
    const problem = portableSegmentProblem(segment);
    if (problem) throw bad(`has a part that ${problem}`);
  }
}

/**
 * The paths seen so far, as case-insensitive, normalising file systems see them: two entries
 * that land on one file there (`A.mbt` and `a.mbt`, `MOON.MOD.JSON` next to `moon.mod.json`), or
 * a file where another entry needs a folder, would let an unpacked zip differ from what was
 * checked here.
 */
class EntryPaths {
  private readonly files = new Set<string>();
  /** Folders named in the zip or implied by the paths of its files. */
  private readonly folders = new Set<string>();
  /** Folder entries named in the zip. */
  private readonly explicit = new Set<string>();

  add(name: string): void {
    const isFolder = name.endsWith('/');
    const key = foldedPath(name.replace(/\/$/, ''));
    const clash = () =>
      invalid(
        `${quoteForLog(name)} clashes with another entry (the same path, in another case or Unicode form, or a file where a folder is)`,
      );
    if (this.files.has(key) || (!isFolder && this.folders.has(key))) throw clash();
    const segments = key.split('/');
    for (let i = 1; i < segments.length; i++) {
      const folder = segments.slice(0, i).join('/');
      if (this.files.has(folder)) throw clash();
      this.folders.add(folder);
    }
    if (isFolder) {
      if (this.folders.has(key) && this.explicit.has(key)) throw clash();
      this.explicit.add(key);
      this.folders.add(key);
    } else {
      this.files.add(key);
    }
  }
}

/**
 * An entry's name exactly as its bytes say, in UTF-8. A zip can carry three names per entry: the
 * central directory's, an Info-ZIP Unicode path field (which yauzl prefers), and the local
 * header's (which streaming unzippers read). All three must agree, or the path checked here is
 * not the path a client writes.
 */
async function entryName(zip: ZipFile, entry: Entry): Promise<string> {
  let raw: string;
  try {
    raw = new TextDecoder('utf-8', { fatal: true }).decode(entry.fileNameRaw);
  } catch {
    throw invalid(`an entry name is not UTF-8 (${quoteForLog(entry.fileNameRaw.toString('latin1'))})`);
  }
  if (raw !== entry.fileName) {
    throw invalid(
      `entry ${quoteForLog(raw)} carries another name (${quoteForLog(entry.fileName)}) in a Unicode path field`,
    );
  }
  const local = await new Promise<Buffer>((resolve, reject) => {
    zip.readLocalFileHeader(entry, (error, header) => {
      if (error) reject(invalid(`${quoteForLog(raw)}: ${error.message}`));
      else resolve(header.fileName);
    });
  });
  if (!local.equals(entry.fileNameRaw)) {
    throw invalid(
      `entry ${quoteForLog(raw)} has another name in its local header (${quoteForLog(local.toString('latin1'))})`,
    );
  }
  return raw;
}

/**
 * moon.mod.json as `moon` (serde_json) would read it: UTF-8, no duplicate keys (parsers differ
 * on which one wins: the index must not say another name than a client reads), no lone
 * surrogates, a bounded depth.
 */
function readManifest(bytes: Buffer): Pick<ModuleArchive, 'module' | 'version' | 'manifest'> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw invalid(`${MANIFEST} is not UTF-8`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw invalid(`${MANIFEST} is not valid JSON (${(error as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(`${MANIFEST} is not a JSON object`);
  }
  const problem =
    jsonShapeProblem(text, MAX_MANIFEST_DEPTH) ??
    (hasLoneSurrogate(value) ? 'has a lone surrogate, which JSON parsers refuse' : undefined);
  if (problem) throw invalid(`${MANIFEST} ${problem}`);
  const manifest = value as Record<string, unknown>;
  const { name, version } = manifest;
  if (typeof name !== 'string' || !name.includes('/') || !isPublishableModuleName(name)) {
    throw invalid(
      `${MANIFEST} "name" ${quoteForLog(name)} is not a module name (owner/name: letters, digits, "_", "." and "-")`,
    );
  }
  if (typeof version !== 'string' || !isValidVersion(version)) {
    throw invalid(`${MANIFEST} "version" ${quoteForLog(version)} is not a semver version`);
  }
  return { module: name, version, manifest };
}

function openZip(bytes: Buffer): Promise<ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(
      bytes,
      { lazyEntries: true, decodeStrings: true, validateEntrySizes: true, strictFileNames: true },
      (error, zip) => {
        if (error || !zip) reject(invalid(`not a zip file (${error?.message ?? 'unreadable'})`));
        else resolve(zip);
      },
    );
  });
}

/** The entries one at a time (yauzl's lazy mode); yauzl's own complaints become INVALID. */
async function* entries(zip: ZipFile): AsyncGenerator<Entry> {
  for (;;) {
    const next = await new Promise<Entry | undefined>((resolve, reject) => {
      const cleanup = () => {
        zip.off('entry', onEntry);
        zip.off('end', onEnd);
        zip.off('error', onError);
      };
      const onEntry = (entry: Entry) => {
        cleanup();
        resolve(entry);
      };
      const onEnd = () => {
        cleanup();
        resolve(undefined);
      };
      const onError = (error: Error) => {
        cleanup();
        reject(invalid(error.message));
      };
      zip.on('entry', onEntry);
      zip.on('end', onEnd);
      zip.on('error', onError);
      zip.readEntry();
    });
    if (!next) return;
    yield next;
  }
}

/** Inflates one entry, counting its bytes; keeps them only when `keep`. */
async function readEntry(
  zip: ZipFile,
  entry: Entry,
  keep: boolean,
  count: (bytes: number) => void,
): Promise<Buffer | undefined> {
  const stream = await new Promise<Readable>((resolve, reject) => {
    zip.openReadStream(entry, (error, readable) => {
      if (error || !readable)
        reject(invalid(`${quoteForLog(entry.fileName)}: ${error?.message ?? 'unreadable'}`));
      else resolve(readable);
    });
  });
  const parts: Buffer[] = [];
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      count(chunk.length);
      if (keep) parts.push(chunk);
    }
  } catch (error) {
    stream.destroy();
    if (error instanceof RegistryError) throw error;
    throw invalid(`${quoteForLog(entry.fileName)}: ${(error as Error).message}`);
  }
  return keep ? Buffer.concat(parts) : undefined;
}
