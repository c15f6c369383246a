import { decodePathSegments } from './archive-url.js';
import { isValidModuleName, isValidSegment } from './module-name.js';
import { isValidVersion } from './version.js';

/**
 * Prebuilt wasm paths, both directions, in one place (PROTOCOL.md 5):
 * `assets/<module>@<version>/<package path>/<last segment>.wasm`, or for the module's root
 * package `assets/<module>@<version>/<last segment of module>.wasm`, and the same with
 * `.sha256` appended. The same relative path names the file in data/assets (with `@` as a
 * folder boundary) and on the upstream.
 */

/** One executable package of one version: what `moonx` / `moon run` asks a wasm for. */
export interface AssetPackage {
  module: string;
  version: string;
  /** Folders below the module's source folder; empty for the root package. */
  packagePath: string[];
}

export type AssetKind = 'wasm' | 'sha256';

export interface AssetRef extends AssetPackage {
  kind: AssetKind;
}

/** Packages deeper than this are not real (the deepest in mooncakes.io are a few levels). */
const MAX_PACKAGE_DEPTH = 32;

/** `<name>.wasm`: the package's last folder, or the module's last segment for the root package. */
export function assetFileName(pkg: AssetPackage, kind: AssetKind): string {
  const last = pkg.packagePath.at(-1) ?? (pkg.module.split('/').at(-1) as string);
  return kind === 'wasm' ? `${last}.wasm` : `${last}.wasm.sha256`;
}

/** A package folder name that can be a path segment here, and never a stored file's name. */
export function isValidPackageSegment(segment: string): boolean {
  // `tool.wasm` as a folder would sit where the root package's `tool.wasm` file goes.
  return isValidSegment(segment) && !segment.endsWith('.wasm') && !segment.endsWith('.wasm.sha256');
}

export function isValidAssetPackage(pkg: AssetPackage): boolean {
  return (
    isValidModuleName(pkg.module) &&
    isValidVersion(pkg.version) &&
    pkg.packagePath.length <= MAX_PACKAGE_DEPTH &&
    pkg.packagePath.every(isValidPackageSegment)
  );
}

/**
 * Parses the part of a request path after `/assets/` (still percent-encoded). Undefined for
 * anything but a valid module, version, package path and the one file name that package's
 * asset has: `..`, `%2e%2e`, empty segments, backslashes and NUL never pass, so the caller
 * answers 404 and builds no path from the raw URL.
 */
export function parseAssetPath(rawRest: string): AssetRef | undefined {
  const segments = decodePathSegments(rawRest);
  if (!segments) return undefined;
  const at = segments.findIndex((segment) => segment.includes('@'));
  if (at < 1) return undefined;
  const owner = segments[at] as string;
  const split = owner.lastIndexOf('@');
  const module = [...segments.slice(0, at), owner.slice(0, split)].join('/');
  const version = owner.slice(split + 1);
  const after = segments.slice(at + 1);
  const fileName = after.pop();
  if (fileName === undefined) return undefined;
  const pkg: AssetPackage = { module, version, packagePath: after };
  if (!isValidAssetPackage(pkg)) return undefined;
  for (const kind of ['wasm', 'sha256'] as const) {
    if (fileName === assetFileName(pkg, kind)) return { ...pkg, kind };
  }
  return undefined;
}

/**
 * The asset's path below a registry's root, URL-encoded: `assets/<module>@<version>/...`
 * (the module's slashes stay; `moon` asks with them literal).
 */
export function assetUrlPath(ref: AssetRef): string {
  const encode = (segments: string[]) => segments.map(encodeURIComponent).join('/');
  const owner = `${encode(ref.module.split('/'))}@${encodeURIComponent(ref.version)}`;
  return `assets/${[owner, ...ref.packagePath.map(encodeURIComponent), encodeURIComponent(assetFileName(ref, ref.kind))].join('/')}`;
}

/** Path segments below data/assets: `<module...>/<version>/<package path...>/<file>`. */
export function assetStoreSegments(ref: AssetRef): string[] {
  return [...versionStoreSegments(ref), ...ref.packagePath, assetFileName(ref, ref.kind)];
}

/** The version's folder below data/assets (gc removes it whole). */
export function versionStoreSegments(pkg: { module: string; version: string }): string[] {
  return [...pkg.module.split('/'), pkg.version];
}

/** How a package is named in messages: `owner/tool@1.0.0/cli`, or `owner/tool@1.0.0` for the root. */
export function describeAssetPackage(pkg: AssetPackage): string {
  return [`${pkg.module}@${pkg.version}`, ...pkg.packagePath].join('/');
}

/**
 * The `.sha256` text, as mooncakes.io writes it (`<hex>  <file>`, like sha256sum). Returns the
 * hex, or undefined when the text is anything else or names another file.
 */
export function parseSha256Text(text: string, fileName: string): string | undefined {
  const match = /^([0-9a-fA-F]{64})(?:[ \t]+\*?(\S+))?\s*$/.exec(text);
  if (!match) return undefined;
  // sha256sum writes the path it was given: only the file's own name has to agree.
  if (match[2] !== undefined && match[2].split('/').at(-1) !== fileName) return undefined;
  return (match[1] as string).toLowerCase();
}

export function formatSha256Text(hex: string, fileName: string): string {
  return `${hex}  ${fileName}\n`;
}
