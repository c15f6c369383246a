import type { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { RegistryError } from '../core/errors.js';
import { type BundleManifest, MANIFEST_PATH, MAX_MANIFEST_BYTES, parseManifest } from './bundle-manifest.js';

/** An opened transfer bundle: its manifest (read first, from the zip's directory) and its entries. */
export interface BundleFile {
  manifest: BundleManifest;
  entries: Map<string, yauzl.Entry>;
  openEntry(entry: yauzl.Entry): Promise<Readable>;
  close(): void;
}

function damaged(file: string, reason: string): RegistryError {
  return new RegistryError('INVALID', `${file} is not a whole moonbit-registry bundle: ${reason}`, {
    hint: 'copy the file again (is it truncated?) or export it again; nothing was changed here',
  });
}

/**
 * Opens a bundle and reads its manifest. A truncated file has no zip directory at its end and
 * is refused here; yauzl also refuses entry names with `..`, absolute paths and backslashes.
 */
export async function openBundleFile(file: string): Promise<BundleFile> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false, validateEntrySizes: true }, (error, z) => {
      if (error) {
        const code = (error as NodeJS.ErrnoException).code;
        reject(code === 'ENOENT' || code === 'EACCES' ? error : damaged(file, error.message));
      } else resolve(z);
    });
  });
  try {
    const entries = new Map<string, yauzl.Entry>();
    // Every entry is stored (export writes no other kind), so what unpacking writes is bounded
    // by the file itself: a deflated entry could claim gigabytes from a few kilobytes.
    let stored = 0;
    await new Promise<void>((resolve, reject) => {
      zip.on('entry', (entry: yauzl.Entry) => {
        if (entries.has(entry.fileName)) return reject(damaged(file, `${entry.fileName} is in it twice`));
        if (entry.compressionMethod !== 0 || entry.compressedSize !== entry.uncompressedSize)
          return reject(
            damaged(file, `${entry.fileName} is compressed (bundles store their entries as they are)`),
          );
        stored += entry.compressedSize;
        if (stored > zip.fileSize)
          return reject(damaged(file, 'its entries add up to more than the file holds'));
        entries.set(entry.fileName, entry);
        zip.readEntry();
      });
      zip.on('end', resolve);
      zip.on('error', (error: Error) => reject(damaged(file, error.message)));
      zip.readEntry();
    });
    const openEntry = (entry: yauzl.Entry) =>
      new Promise<Readable>((resolve, reject) => {
        zip.openReadStream(entry, (error, stream) =>
          error ? reject(damaged(file, error.message)) : resolve(stream),
        );
      });
    const manifestEntry = entries.get(MANIFEST_PATH);
    if (!manifestEntry) throw damaged(file, 'it has no manifest.json');
    if (manifestEntry.uncompressedSize > MAX_MANIFEST_BYTES)
      throw damaged(file, 'its manifest.json is too large');
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of await openEntry(manifestEntry)) chunks.push(chunk as Buffer);
    } catch (error) {
      throw damaged(file, `manifest.json: ${(error as Error).message}`);
    }
    let manifest: BundleManifest;
    try {
      manifest = parseManifest(Buffer.concat(chunks).toString('utf8'));
    } catch (error) {
      throw damaged(file, (error as Error).message);
    }
    const listed = new Set(manifest.files.map((f) => f.path));
    for (const name of entries.keys()) {
      if (name !== MANIFEST_PATH && !listed.has(name)) throw damaged(file, `${name} is not in its manifest`);
    }
    for (const f of manifest.files) {
      const entry = entries.get(f.path);
      if (!entry) throw damaged(file, `${f.path} is missing`);
      if (entry.uncompressedSize !== f.size)
        throw damaged(file, `${f.path} has ${entry.uncompressedSize} bytes, the manifest says ${f.size}`);
    }
    return { manifest, entries, openEntry, close: () => zip.close() };
  } catch (error) {
    zip.close();
    throw error;
  }
}
