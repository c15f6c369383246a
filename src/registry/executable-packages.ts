import type { Readable } from 'node:stream';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { isValidPackageSegment } from '../core/asset-path.js';

/**
 * Which packages of a module archive are executables (`is-main`), named as `moon` names them in
 * asset URLs: folders relative to the module's `source` folder (moon.mod.json), the root
 * package as the empty path. mooncakes.io builds a prebuilt wasm for each (PROTOCOL.md 5).
 */

const MODULE_FILE = 'moon.mod.json';
const PACKAGE_JSON = 'moon.pkg.json';
/** The newer DSL: `options("is-main": true, ...)`. */
const PACKAGE_DSL = 'moon.pkg';
/** Descriptors are small; a bigger one is skipped rather than read into memory. */
const MAX_DESCRIPTOR_BYTES = 256 * 1024;

/**
 * From an archive's descriptor files (zip entry name -> text), the executable packages' paths,
 * sorted. Pure: the zip reading is in readExecutablePackages.
 */
export function executablePackages(files: ReadonlyMap<string, string>): string[][] {
  const source = sourceFolder(files.get(MODULE_FILE));
  const found = new Map<string, string[]>();
  for (const [name, text] of files) {
    const segments = name.split('/');
    const file = segments.pop();
    const isMain = file === PACKAGE_JSON ? jsonIsMain(text) : file === PACKAGE_DSL ? dslIsMain(text) : false;
    if (!isMain) continue;
    if (segments.length < source.length || source.some((s, i) => segments[i] !== s)) continue;
    const packagePath = segments.slice(source.length);
    // Folders moon ignores (`_build`, `.mooncakes`, tests' fixtures) and names we cannot store.
    if (packagePath.some((s) => !isValidPackageSegment(s) || s === '_build' || s === 'target')) continue;
    found.set(packagePath.join('/'), packagePath);
  }
  return [...found.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, path]) => path);
}

/** moon.mod.json's `source` (`src`, `./src/`), as path segments; none for the module root. */
export function sourceFolder(moduleJson: string | undefined): string[] {
  if (moduleJson === undefined) return [];
  let source: unknown;
  try {
    source = (JSON.parse(moduleJson) as { source?: unknown }).source;
  } catch {
    return [];
  }
  if (typeof source !== 'string') return [];
  return source.split('/').filter((s) => s !== '' && s !== '.');
}

function jsonIsMain(text: string): boolean {
  try {
    const pkg = JSON.parse(text) as { 'is-main'?: unknown; is_main?: unknown };
    return pkg['is-main'] === true || pkg.is_main === true;
  } catch {
    return false;
  }
}

/**
 * moon.pkg (the DSL `moon fmt` writes): `options("is-main": true, ...)`; `is_main: true` and a
 * bare `is-main: true` are accepted too. Comments and strings other than the key are skipped, so
 * `// "is-main": true` or a string holding those words does not count.
 */
export function dslIsMain(text: string): boolean {
  const code = stripComments(text);
  const options = /\boptions\s*\(/g;
  for (let match = options.exec(code); match; match = options.exec(code)) {
    const body = code.slice(match.index + match[0].length, closingParen(code, options.lastIndex));
    if (/(?:^|[\s,(])(?:"is-main"|"is_main"|is_main|is-main)\s*:\s*true\b/.test(body)) return true;
  }
  return false;
}

/** Removes `//` line comments and `/* *\/` blocks, leaving string literals as they are. */
function stripComments(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const end = stringEnd(text, i);
      out += text.slice(i, end);
      i = end - 1;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 1;
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

/** Index just past the string literal starting at `start`. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i + 1;
  }
  return text.length;
}

/** Index of the `)` closing the parenthesis opened just before `from`, strings skipped. */
function closingParen(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (c === '"') i = stringEnd(text, i) - 1;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  return text.length;
}

/** Reads the descriptors out of a stored module zip and returns its executable packages. */
export async function readExecutablePackages(zipPath: string): Promise<string[][]> {
  const zip = await new Promise<ZipFile>((resolve, reject) =>
    yauzl.open(zipPath, { lazyEntries: true, strictFileNames: false }, (error, file) =>
      error ? reject(error) : resolve(file),
    ),
  );
  const files = new Map<string, string>();
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on('error', reject);
      zip.on('end', () => resolve());
      zip.on('entry', (entry: Entry) => {
        const base = entry.fileName.split('/').at(-1);
        const wanted =
          (base === PACKAGE_JSON || base === PACKAGE_DSL || entry.fileName === MODULE_FILE) &&
          entry.uncompressedSize <= MAX_DESCRIPTOR_BYTES;
        if (!wanted) {
          zip.readEntry();
          return;
        }
        readEntry(zip, entry)
          .then((text) => {
            files.set(entry.fileName, text);
            zip.readEntry();
          })
          .catch(reject);
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
  return executablePackages(files);
}

function readEntry(zip: ZipFile, entry: Entry): Promise<string> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (error, stream: Readable | undefined) => {
      if (error || !stream) {
        reject(error ?? new Error('no stream'));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_DESCRIPTOR_BYTES) stream.destroy(new Error(`${entry.fileName} is too large`));
        else chunks.push(chunk);
      });
      stream.on('error', reject);
      stream.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
  });
}
