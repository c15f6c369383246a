import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DownloadObserver } from './archive-download.js';
import type { ArchiveTarget } from './archive-fetch.js';
import type { UpstreamSource } from './upstream-source.js';

/** Why a source that packs its archives could not give this one; `absent` is its 404. */
export class PackFailure extends Error {
  constructor(
    readonly reason: string,
    readonly absent: boolean,
  ) {
    super(reason);
  }
}

/**
 * A git source's archive, packed from its repository instead of downloaded, and stored the way
 * a download is (a temp file in `tmpDir`, fsynced, renamed into place) before the observer
 * hears of it: a waiting client gets bytes that are already in the store.
 */
export async function storePackedArchive(
  upstream: UpstreamSource,
  target: ArchiveTarget,
  tmpDir: string,
  observer: DownloadObserver | undefined,
): Promise<number> {
  const packed = await upstream.packArchive(target.module, target.version, target.checksum);
  if (packed.kind === 'unknown') {
    throw new PackFailure(`source "${upstream.name}" packed no such version from its repository`, true);
  }
  if (packed.kind === 'mismatch') throw new PackFailure(`source "${upstream.name}": ${packed.reason}`, false);
  await mkdir(tmpDir, { recursive: true });
  const temp = join(tmpDir, `${target.checksum}.${process.pid}.${randomBytes(4).toString('hex')}.packed`);
  try {
    await writeFile(temp, packed.bytes, { flag: 'wx', mode: 0o644, flush: true });
    await target.keep(temp);
  } finally {
    await rm(temp, { force: true }).catch(() => undefined);
  }
  observer?.started(packed.bytes.length);
  observer?.data(packed.bytes);
  observer?.verified();
  return packed.bytes.length;
}
