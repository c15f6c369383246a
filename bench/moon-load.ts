/**
 * Many real clients acting as `moon` at once against a running registry, for a fixed time: the
 * load of bench/load-bench.ts.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { download, type RegistryIndex, ResolveError, resolve, update } from '../test/support/moon-client.js';
import { seededRandom } from '../test/support/random.js';

export interface MoonLoadOptions {
  clients: number;
  seconds: number;
  seed: number;
  /** Each session's moon home goes in here, and is removed after the session. */
  scratch: string;
}

export interface MoonLoadResult {
  sessions: number;
  /** Each clone's time, ms. */
  clones: number[];
  /** Each archive request's time, ms. */
  archives: number[];
  errors: string[];
}

/**
 * BENCH_CLIENTS workers loop until the time is up; each session is what a CI job does with an
 * empty cache: a shallow clone of the index with git (as `moon update` does), then resolving a
 * randomly chosen module at its latest version (minimal version selection over `index`, the
 * same commit every clone gets, parsed once) and downloading every archive of the result,
 * checking each checksum.
 */
export async function moonLoad(
  serverUrl: string,
  index: RegistryIndex,
  opts: MoonLoadOptions,
): Promise<MoonLoadResult> {
  const modules = [...index.modules.keys()];
  const result: MoonLoadResult = { sessions: 0, clones: [], archives: [], errors: [] };
  const deadline = performance.now() + opts.seconds * 1000;
  const session = async (home: string, module: string) => {
    const started = performance.now();
    await update(serverUrl, home, { timeoutMs: 120_000 });
    result.clones.push(performance.now() - started);
    const versions = [...(index.modules.get(module)?.keys() ?? [])];
    const version = versions[versions.length - 1] as string;
    for (const [dep, depVersion] of resolve(index, { [module]: version })) {
      if (performance.now() >= deadline) break;
      const checksum = index.modules.get(dep)?.get(depVersion)?.checksum ?? '';
      const t = performance.now();
      await download(serverUrl, dep, depVersion, checksum, { timeoutMs: 60_000 });
      result.archives.push(performance.now() - t);
    }
    result.sessions++;
  };
  const worker = async (id: number) => {
    const pick = seededRandom(opts.seed + id);
    for (let n = 0; performance.now() < deadline; n++) {
      const home = path.join(opts.scratch, `home-${id}-${n}`);
      try {
        await session(home, modules[Math.floor(pick() * modules.length)] as string);
      } catch (error) {
        // A module whose dependencies cannot be resolved is the index's fact, not an error.
        if (!(error instanceof ResolveError))
          result.errors.push(error instanceof Error ? error.message : String(error));
      } finally {
        await rm(home, { recursive: true, force: true });
      }
    }
  };
  await Promise.all(Array.from({ length: opts.clients }, (_, id) => worker(id)));
  return result;
}
