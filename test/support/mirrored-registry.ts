/**
 * The usual set-up of an end-to-end file: the fixture behind a fake upstream, a registry with
 * that upstream as its only source and some modules mirrored, and a scratch folder.
 */
import { initRegistryWithSource, runCliOk, tempDir } from './cli.js';
import { FakeUpstream } from './fake-upstream.js';
import { buildFixture, type Fixture } from './fixture.js';

export interface MirroredRegistry {
  fixture: Fixture;
  upstream: FakeUpstream;
  /** The registry folder; its source is named "up". */
  root: string;
  scratch: string;
  cleanup(): Promise<void>;
}

export async function mirroredRegistry(patterns: string[], scratchPrefix: string): Promise<MirroredRegistry> {
  const fixture = await buildFixture();
  const upstream = await FakeUpstream.start({ fixture });
  const registry = await initRegistryWithSource('up', upstream.url);
  const scratch = await tempDir(scratchPrefix);
  await runCliOk(['mirror', ...patterns], { cwd: registry.root });
  return {
    fixture,
    upstream,
    root: registry.root,
    scratch: scratch.path,
    cleanup: async () => {
      await upstream.stop();
      await registry.remove();
      await scratch.remove();
      await fixture.cleanup();
    },
  };
}
