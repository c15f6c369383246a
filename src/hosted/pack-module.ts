import { lstat, readdir, readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { Zip, ZipDeflate } from 'fflate';
import picomatch from 'picomatch';
import { RegistryError } from '../core/errors.js';
import { runGit } from '../git/run-git.js';

/** Build output and tool folders `moon package` never packs. */
const NEVER_PACKED = new Set(['.git', '_build', 'target', '.mooncakes']);

export interface PackedModule {
  bytes: Buffer;
  /** Paths in the zip, in zip order. */
  files: string[];
}

/**
 * Packs a module folder the way `moon package` does: moon.mod.json at the root, without `.git`,
 * `_build`, `target`, `.mooncakes` and git-ignored files (when the folder is in a git work
 * tree), honouring moon.mod.json's `include` and `exclude` globs. Deterministic: entries sorted,
 * one fixed timestamp and mode, so the same files give the same checksum on every machine with
 * the same Node.js. Symbolic links are left out (a registry refuses them in a zip).
 */
export async function packModule(dir: string): Promise<PackedModule> {
  const packs = packedFileRule(await readManifestGlobs(dir));
  const candidates = (await gitFiles(dir)) ?? (await walk(dir));
  const files: string[] = [];
  for (const file of candidates) {
    if (!packs(file)) continue;
    const info = await lstat(join(dir, file)).catch(() => undefined);
    if (info?.isFile()) files.push(file);
  }
  files.sort();
  const entries = await Promise.all(
    files.map(async (file) => ({ path: file, bytes: await readFile(join(dir, file)) })),
  );
  return { bytes: await writeModuleZip(entries), files };
}

/** moon.mod.json's `include` and `exclude` globs. */
export interface PackGlobs {
  include: string[];
  exclude: string[];
}

/**
 * Which module-relative paths `moon package` packs: never build and tool folders, always
 * moon.mod.json, else what `include` (all when empty) names and `exclude` does not.
 */
export function packedFileRule(globs: PackGlobs): (path: string) => boolean {
  const include = globs.include.length > 0 ? picomatch(globs.include, { dot: true }) : () => true;
  const exclude = picomatch(globs.exclude.length > 0 ? globs.exclude : ['\0'], { dot: true });
  return (path) => {
    if (path.split('/').some((segment) => NEVER_PACKED.has(segment))) return false;
    return path === 'moon.mod.json' || (include(path) && !exclude(path));
  };
}

/** `include` and `exclude` of a parsed moon.mod.json (non-strings ignored). */
export function packGlobsOf(manifest: unknown): PackGlobs {
  const globs = (key: string) => {
    const list = (manifest as Record<string, unknown> | null)?.[key];
    return Array.isArray(list) ? list.filter((g): g is string => typeof g === 'string') : [];
  };
  return { include: globs('include'), exclude: globs('exclude') };
}

/** Deflate level of packed modules: zlib's default, as `moon package` uses. */
const DEFLATE_LEVEL = 6;
/** Regular file, rw-r--r--, in the high half of a Unix zip entry's external attributes. */
const FILE_ATTRIBUTES = (0o100644 << 16) >>> 0;
const UNIX = 3;

/**
 * The zip of a module's files, in the order given (sorted by the callers). Byte for byte
 * deterministic on every machine: one fixed timestamp and mode, and fflate's deflate (plain
 * JavaScript, its version pinned) rather than Node's zlib, whose output changes with the zlib
 * build Node ships and the CPU features it finds. A git source's checksums depend on this
 * (test/unit/pack-module.test.ts pins one); changing the output changes every such checksum.
 */
export async function writeModuleZip(
  entries: ReadonlyArray<{ path: string; bytes: Buffer }>,
): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  const failed: { error?: Error } = {};
  const zip = new Zip((error, data) => {
    if (error) failed.error = error;
    else parts.push(data);
  });
  // Local midnight: DOS times are local, so this encodes the same on every machine.
  const mtime = new Date(1980, 0, 1, 0, 0, 0);
  for (const entry of entries) {
    const file = new ZipDeflate(entry.path, { level: DEFLATE_LEVEL });
    file.mtime = mtime;
    file.os = UNIX;
    file.attrs = FILE_ATTRIBUTES;
    zip.add(file);
    file.push(entry.bytes, true);
    if (failed.error) throw failed.error;
    // Deflating is synchronous: let the server answer others between files.
    await new Promise((resolve) => setImmediate(resolve));
  }
  zip.end();
  if (failed.error) throw failed.error;
  return Buffer.concat(parts);
}

async function readManifestGlobs(dir: string): Promise<PackGlobs> {
  let text: string;
  try {
    text = await readFile(join(dir, 'moon.mod.json'), 'utf8');
  } catch {
    throw new RegistryError('USAGE', `${dir} has no moon.mod.json: not a MoonBit module folder`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new RegistryError(
      'INVALID',
      `${join(dir, 'moon.mod.json')} is not valid JSON (${(error as Error).message})`,
    );
  }
  return packGlobsOf(value);
}

/** The folder's files git does not ignore (tracked or not), or undefined outside a work tree. */
async function gitFiles(dir: string): Promise<string[] | undefined> {
  try {
    const { stdout } = await runGit([
      '-C',
      dir,
      'ls-files',
      '-z',
      '--cached',
      '--others',
      '--exclude-standard',
      '--',
      '.',
    ]);
    return stdout
      .toString('utf8')
      .split('\0')
      .filter((path) => path !== '');
  } catch {
    return undefined;
  }
}

/** Every file below `dir`, as `/`-separated relative paths, skipping folders never packed. */
async function walk(dir: string, root = dir): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (NEVER_PACKED.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path, root)));
    else if (entry.isFile()) out.push(relative(root, path).split(sep).join('/'));
  }
  return out;
}
