/**
 * Modules with executable packages (`is-main`) and the prebuilt wasm mooncakes.io builds for
 * them (PROTOCOL.md 5), added to a fixture and its fake upstream: the module zips, their index
 * lines, and the assets under /assets/ on the upstream.
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type { FakeUpstream } from './fake-upstream.js';
import { type Fixture, formatIndexLine, pythonTimestamp } from './fixture.js';
import { moduleZip } from './module-zip.js';

export interface ToolModule {
  module: string;
  version: string;
  /** moon.mod.json's `source` folder, if any. */
  source?: string;
  /** Files of the zip besides moon.mod.json (package descriptors and code). */
  files: Record<string, string>;
  /** Package paths (relative to `source`; [] for the root package) the upstream has a wasm for. */
  built: string[][];
}

/** The path of a package's wasm below /assets/, as `moon` asks for it. */
export function assetPath(module: string, version: string, packagePath: string[]): string {
  const last = packagePath.at(-1) ?? (module.split('/').at(-1) as string);
  return [`${module}@${version}`, ...packagePath, `${last}.wasm`].join('/');
}

/** Distinct, recognisable bytes for a package's wasm (the magic number, then a marker). */
export function wasmBytes(module: string, version: string, packagePath: string[]): Buffer {
  return Buffer.concat([
    Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]),
    Buffer.from(`${assetPath(module, version, packagePath)}\n`),
  ]);
}

/** Publishes each tool module on the fixture (archive + index line) and its wasm on the upstream. */
export async function addToolModules(
  fixture: Fixture,
  upstream: FakeUpstream,
  tools: ToolModule[],
): Promise<void> {
  for (const tool of tools) {
    const manifest = {
      name: tool.module,
      version: tool.version,
      ...(tool.source ? { source: tool.source } : {}),
    };
    const zip = moduleZip(manifest, tool.files);
    const checksum = createHash('sha256').update(zip).digest('hex');
    await writeFile(fixture.archivePath(checksum), zip);
    const line = formatIndexLine({
      name: tool.module,
      version: tool.version,
      checksum,
      created_at: pythonTimestamp(),
    });
    await fixture.appendIndexLines(tool.module, [line]);
    let versions = fixture.modules.get(tool.module);
    if (!versions) {
      versions = new Map();
      fixture.modules.set(tool.module, versions);
    }
    versions.set(tool.version, { checksum, size: zip.length, line });
    for (const packagePath of tool.built) {
      upstream.assets.set(
        assetPath(tool.module, tool.version, packagePath),
        wasmBytes(tool.module, tool.version, packagePath),
      );
    }
  }
}
