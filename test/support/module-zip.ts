/**
 * Module zips for publish tests: what `moon package` makes, and hostile ones no zip library would
 * write (names that climb out, backslashes, duplicates, symlinks). Hostile names are written as
 * same-length placeholders and patched in afterwards, in the local headers and the central
 * directory alike.
 */
import { strToU8, type Zippable, zipSync } from 'fflate';

export interface ZipEntry {
  name: string;
  data?: string | Uint8Array;
  /** A symbolic link whose target is `data`. */
  symlink?: boolean;
  /** Another name of the same byte length in the local header only (streaming unzippers read it). */
  localName?: string;
}

/** A module zip as `moon package` makes it: moon.mod.json at the root, plus `files`. */
export function moduleZip(manifest: Record<string, unknown>, files: Record<string, string> = {}): Buffer {
  return makeZip([
    { name: 'moon.mod.json', data: JSON.stringify(manifest) },
    ...Object.entries(files).map(([name, data]) => ({ name, data })),
  ]);
}

/** Any entries, byte for byte as named (see the file comment). */
export function makeZip(entries: ZipEntry[]): Buffer {
  const files: Zippable = {};
  const patches: Array<[Buffer, Buffer, Buffer | undefined]> = [];
  entries.forEach((entry, i) => {
    const wanted = Buffer.from(entry.name, 'utf8');
    const placeholder = placeholderFor(i, wanted.length);
    const local = entry.localName === undefined ? undefined : Buffer.from(entry.localName, 'utf8');
    if (local && local.length !== wanted.length)
      throw new Error('test zip: localName must have the same length');
    patches.push([Buffer.from(placeholder, 'utf8'), wanted, local]);
    const data = typeof entry.data === 'string' ? strToU8(entry.data) : (entry.data ?? new Uint8Array());
    // Unix mode in the high 16 bits of the external attributes; os 3 = Unix.
    files[placeholder] = entry.symlink ? [data, { os: 3, attrs: (0o120777 << 16) >>> 0 }] : data;
  });
  const zip = Buffer.from(zipSync(files, { mtime: new Date(2024, 0, 1) }));
  for (const [from, to, local] of patches) {
    // The local header comes first in the file, the central directory's copy last.
    if (local) local.copy(zip, zip.indexOf(from));
    replaceAll(zip, from, to);
  }
  return zip;
}

/** A unique name of exactly `length` bytes that no real entry or zip structure contains. */
function placeholderFor(index: number, length: number): string {
  const tag = `~${index}~`;
  if (length < tag.length + 1) throw new Error(`test zip: names need at least ${tag.length + 1} bytes`);
  return tag + 'Q'.repeat(length - tag.length);
}

function replaceAll(buffer: Buffer, from: Buffer, to: Buffer): void {
  for (let at = buffer.indexOf(from); at >= 0; at = buffer.indexOf(from, at + to.length)) to.copy(buffer, at);
}
