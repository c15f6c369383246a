import { z } from 'zod';
import { normalizeChecksum } from '../core/checksum.js';
import { isValidModuleName } from '../core/module-name.js';
import { isValidVersion } from '../core/version.js';

/**
 * The transfer bundle (`export` / `import`): one uncompressed zip holding
 *
 *   index.bundle                              git bundle of the served index, branch main
 *   packages/<module>/<version>/<sha256>.zip  archives, as in data/packages
 *   assets/<module>/<version>/...             prebuilt wasm and their records, as in data/assets
 *   symbols/<source>/...                      editor symbols, as in data/symbols
 *   manifest.json                             written last: every other entry's sha256 and size
 *
 * A zip rather than a tar: the importer reads the manifest from the central directory before
 * it unpacks anything (identity and prerequisite are refused in a second, not after hundreds
 * of MB), and yazl/yauzl are already this project's zip writer and reader. Entries are stored,
 * not deflated: archives are zips already.
 */
export const BUNDLE_FORMAT = 'moonbit-registry-bundle' as const;
export const MANIFEST_PATH = 'manifest.json';
export const INDEX_BUNDLE_PATH = 'index.bundle';
/** A manifest of a million files is ~150 MB; anything near this is not one of ours. */
export const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;

const oid = z.string().regex(/^[0-9a-f]{40}$/, 'must be a 40-digit commit id');

const ManifestSchema = z.object({
  format: z.literal(BUNDLE_FORMAT),
  version: z.literal(1),
  registry: z.object({ name: z.string().min(1), id: z.string().min(1) }),
  created: z.string(),
  index: z.object({ commit: oid, prerequisite: oid.nullable() }),
  files: z.array(
    z.object({
      path: z.string(),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      size: z.number().int().min(0),
    }),
  ),
});

export type BundleManifest = z.infer<typeof ManifestSchema>;
export type ManifestFile = BundleManifest['files'][number];

export type BundleEntry =
  | { kind: 'index' }
  | { kind: 'archive'; module: string; version: string; checksum: string }
  | { kind: 'asset'; rel: string }
  | { kind: 'symbols'; rel: string };

/** A path inside the bundle that is safe to join under a data folder: no `..`, no absolute path. */
function safeRelative(path: string): boolean {
  return (
    path.length > 0 &&
    path
      .split('/')
      .every((s) => s !== '' && s !== '.' && s !== '..' && !/[\\:]/.test(s) && !hasControlCharacter(s))
  );
}

function hasControlCharacter(text: string): boolean {
  return [...text].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
}

/** What an entry of a bundle is, or undefined for a path no bundle may hold. */
export function classifyEntry(path: string): BundleEntry | undefined {
  if (path === INDEX_BUNDLE_PATH) return { kind: 'index' };
  if (!safeRelative(path)) return undefined;
  const [top, ...rest] = path.split('/');
  if (top === 'packages') {
    const file = rest.at(-1) ?? '';
    const version = rest.at(-2) ?? '';
    const module = rest.slice(0, -2).join('/');
    const checksum = file.endsWith('.zip') ? normalizeChecksum(file.slice(0, -4)) : undefined;
    if (!checksum || checksum !== file.slice(0, -4) || !isValidModuleName(module) || !isValidVersion(version))
      return undefined;
    return { kind: 'archive', module, version, checksum };
  }
  // Which module and version an asset belongs to is read against the bundle's index (bundle-assets.ts).
  if (top === 'assets' && rest.length >= 3 && /\.wasm(\.sha256)?$/.test(rest.at(-1) ?? ''))
    return { kind: 'asset', rel: rest.join('/') };
  if (top === 'symbols' && rest.length >= 2) return { kind: 'symbols', rel: rest.join('/') };
  return undefined;
}

/**
 * Parses manifest.json and checks it describes a bundle this version can apply: every path
 * allowed, none twice, an index bundle, and each archive's content named by its own sha256.
 * Throws an Error whose message says what is wrong.
 */
export function parseManifest(text: string): BundleManifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error('manifest.json is not JSON');
  }
  const parsed = ManifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`manifest.json: ${issue?.path.join('.') || 'top level'}: ${issue?.message ?? 'invalid'}`);
  }
  const manifest = parsed.data;
  const seen = new Set<string>();
  for (const file of manifest.files) {
    const entry = classifyEntry(file.path);
    if (!entry || file.path === MANIFEST_PATH)
      throw new Error(`manifest.json lists a path no bundle may hold: ${JSON.stringify(file.path)}`);
    if (seen.has(file.path)) throw new Error(`manifest.json lists ${file.path} twice`);
    seen.add(file.path);
    if (entry.kind === 'archive' && entry.checksum !== file.sha256)
      throw new Error(`manifest.json: ${file.path} is not named by its sha256 (${file.sha256})`);
  }
  if (!seen.has(INDEX_BUNDLE_PATH)) throw new Error('manifest.json lists no index.bundle');
  return manifest;
}
