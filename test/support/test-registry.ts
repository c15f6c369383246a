/**
 * A small registry served in-process, and raw HTTP clients for the server tests: the modules
 * are picked for the awkward names (build metadata, nested, unicode), archives are tiny fakes.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { sha256Hex } from '../../src/core/checksum.js';
import { type IndexEntry, parseIndexLine } from '../../src/index/index-file.js';
import { ServedIndex } from '../../src/index/served-index.js';
import { writeProvenance } from '../../src/registry/provenance.js';
import { openRegistry, type Registry } from '../../src/registry/registry.js';

export const CORE = 'moonbitlang/core';
export const CORE_BUILD = '0.1.20260213+3382e0600';
export const NESTED = 'tonyfettes/js/test';
export const CAMEL = 'illusory0x0/🐫';
export const PKG = 'test/pkg';
/** In registry.toml: no response may ever contain it. */
export const MARKER = 'TOP-SECRET-MARKER-7f3a';

export const CONFIG = `# ${MARKER}
default_source = "up"

[registry]
name = "t"

[[sources]]
name = "up"
type = "mooncakes"
url = "https://upstream.example"
index_url = "https://upstream.example/git/index"
priority = 10
auth = { type = "bearer", token = "${MARKER}-token" }

[[sources]]
name = "off"
url = "https://other.example"
index_url = "https://other.example/git/index"
enabled = false
`;

export interface Published {
  module: string;
  version: string;
  bytes: Buffer;
  extra?: Record<string, unknown>;
}

export function archiveBytes(module: string, version: string): Buffer {
  return Buffer.from(`PK fake archive of ${module}@${version}\n`, 'utf8');
}

/** Writes the archive into the store and returns its index entry, checksum from the bytes. */
export async function makeEntry(registry: Registry, item: Published): Promise<IndexEntry> {
  const checksum = sha256Hex(item.bytes);
  const path = registry.store.locate(item.module, item.version, checksum);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, item.bytes);
  const raw = JSON.stringify({ name: item.module, version: item.version, checksum, deps: {}, ...item.extra });
  const entry = parseIndexLine(item.module, raw);
  assert.ok(typeof entry !== 'string', `bad test entry: ${String(entry)}`);
  return entry;
}

export interface TestRegistry {
  registry: Registry;
  /** Every entry published so far, by module. */
  published: Map<string, IndexEntry[]>;
  /** Stores the archives, appends their lines and commits; returns the new commit. */
  publish(items: Published[], message: string): Promise<string>;
}

/** `dir/registry.toml` (CONFIG) and `dir/data/` with five versions of four modules published. */
export async function createTestRegistry(dir: string): Promise<TestRegistry> {
  await writeFile(join(dir, 'registry.toml'), CONFIG);
  const registry = await openRegistry(dir);
  await new ServedIndex(registry.layout.indexDir).initialize('t');
  const published = new Map<string, IndexEntry[]>();
  const publish = async (items: Published[], message: string) => {
    for (const item of items) {
      const list = published.get(item.module) ?? [];
      list.push(await makeEntry(registry, item));
      published.set(item.module, list);
    }
    const result = await registry.servedIndex.publish(published, message);
    assert.equal(result.changed, true);
    return result.commit;
  };
  const items: Published[] = [
    { module: CORE, version: CORE_BUILD, extra: { created_at: '2026-02-13T00:00:00Z' } },
    { module: CORE, version: '0.1.0' },
    { module: NESTED, version: '0.1.0' },
    { module: CAMEL, version: '0.2.0' },
    { module: PKG, version: '1.2.3', extra: { yanked: true, created_at: '2025-01-01T00:00:00Z' } },
  ].map((item) => ({ ...item, bytes: archiveBytes(item.module, item.version) }));
  await publish(items, 'first modules');
  const coreChecksum = sha256Hex(archiveBytes(CORE, CORE_BUILD));
  await writeProvenance(
    registry.layout.provenanceFile,
    new Map([[`${CORE}@${CORE_BUILD}`, { source: 'up', checksum: coreChecksum }]]),
  );
  return { registry, published, publish };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A request with the path sent exactly as given (fetch would normalize `..` away). */
export function raw(
  baseUrl: string,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: Buffer } = {},
): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path,
        method: init.method ?? 'GET',
        headers: init.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

/** git upload-pack processes serving this repository (Linux/macOS `ps`). */
export function countUploadPacks(gitDir: string): number {
  return execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.includes('upload-pack') && line.includes(gitDir)).length;
}

export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

export function pkt(text: string): string {
  return `${(Buffer.byteLength(text) + 4).toString(16).padStart(4, '0')}${text}`;
}

/** A protocol v2 `ls-refs` request, as a client would POST it. */
export const LS_REFS = Buffer.from(
  `${pkt('command=ls-refs\n')}0001${pkt('peel\n')}${pkt('ref-prefix refs/heads/\n')}0000`,
);

export const UPLOAD_PACK_HEADERS = {
  'Content-Type': 'application/x-git-upload-pack-request',
  'Git-Protocol': 'version=2',
};

/** A raw v2 upload-pack POST whose body the test writes (or abandons) itself. */
export function uploadPackRequest(url: URL) {
  return request({
    host: url.hostname,
    port: url.port,
    path: '/git/index/git-upload-pack',
    method: 'POST',
    headers: UPLOAD_PACK_HEADERS,
  });
}
