/**
 * A full disk and a read-only data folder: commands end with a clear message naming the path,
 * and leave no partial file behind. The data folder is put on a small tmpfs (no space) or
 * bind-mounted read-only; both need mount rights (root in a container with CAP_SYS_ADMIN), and
 * the tests say so and skip where the machine does not give them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { initRegistryWithSource, runCli, runCliOk, startServe, tempDir } from '../support/cli.js';
import { FakeUpstream } from '../support/fake-upstream.js';
import { buildFixture, type Fixture } from '../support/fixture.js';
import { git } from '../support/git.js';
import { download, readIndex, update } from '../support/moon-client.js';

/** Whether this machine lets us mount a tmpfs (the test set-up needs it). */
function canMount(): boolean {
  const probe = mkdtempSync(path.join(tmpdir(), 'mr-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const mountable = canMount();
const skip = mountable ? false : 'needs mount rights (tmpfs and bind mounts) on this machine';

/** Files under `dir`, relative, recursively. */
async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

/** Every stored archive hashes to its name; every served line has its archive. */
async function assertConsistent(root: string): Promise<void> {
  const packages = path.join(root, 'data', 'packages');
  for (const file of await files(packages)) {
    const bytes = await readFile(path.join(packages, file));
    assert.equal(`${createHash('sha256').update(bytes).digest('hex')}.zip`, path.basename(file), file);
  }
  const gitDir = path.join(root, 'data', 'index');
  const listed = (await git(['--git-dir', gitDir, 'ls-tree', '-r', '--name-only', 'main'])).split('\n');
  for (const file of listed.filter((f) => f.endsWith('.index'))) {
    const module = file.slice('user/'.length, -'.index'.length);
    const text = await git(['--git-dir', gitDir, 'show', `main:${file}`]);
    for (const line of text.split('\n').filter(Boolean)) {
      const { version, checksum } = JSON.parse(line) as { version: string; checksum: string };
      const archive = path.join(packages, ...module.split('/'), version, `${checksum}.zip`);
      assert.ok(
        (await files(path.dirname(archive))).includes(path.basename(archive)),
        `${module}@${version}`,
      );
    }
  }
  assert.deepEqual(await files(path.join(root, 'data', 'tmp')), [], 'no partial file in data/tmp');
  const crash = (await readdir(gitDir)).filter((name) => name.startsWith('fast_import_crash_'));
  assert.deepEqual(crash, [], 'no git crash report left in the served index');
}

describe('disk errors', { skip }, () => {
  let fixture: Fixture;
  let upstream: FakeUpstream;
  let registry: { root: string; remove: () => Promise<void> };
  let data: string;
  const mounted: string[] = [];

  before(async () => {
    fixture = await buildFixture();
    upstream = await FakeUpstream.start({ fixture });
    registry = await initRegistryWithSource('up', upstream.url);
    await runCliOk(['mirror', 'moonbitlang/x', '--strict', '-q'], { cwd: registry.root });
    data = path.join(registry.root, 'data');
  });

  after(async () => {
    for (const point of mounted.reverse()) execFileSync('umount', [point], { stdio: 'ignore' });
    await upstream?.stop();
    await registry?.remove();
    await fixture?.cleanup();
  });

  test('no space left: failures name the path, nothing partial stays, the next run completes', async () => {
    // The data folder moves onto a tmpfs with 48 KiB left once it is copied there.
    const saved = `${data}-saved`;
    renameSync(data, saved);
    mkdirSync(data);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', data]);
    mounted.push(data);
    cpSync(saved, data, { recursive: true });
    rmSync(saved, { recursive: true, force: true });
    const free = Number(execFileSync('df', ['--output=avail', '-B1', data]).toString().split('\n')[1]);
    const filler = path.join(registry.root, 'data', 'filler');
    execFileSync('fallocate', ['-l', String(free - 48 * 1024), filler]);

    const full = await runCli(['mirror', 'moonbitlang/core', '--strict'], { cwd: registry.root });
    assert.notEqual(full.code, 0);
    assert.match(full.stderr, /ENOSPC|no space left/i);
    assert.ok(
      full.stderr.includes(data),
      `the message names a path under data/:\n${full.stderr.slice(-600)}`,
    );
    rmSync(filler);
    await assertConsistent(registry.root);

    const again = await runCli(['mirror', 'moonbitlang/core', '--strict', '-q'], { cwd: registry.root });
    assert.equal(again.code, 0, again.stderr);
    await assertConsistent(registry.root);
  });

  test('read-only data folder: writers stop at once naming it; serving what is stored still works', async () => {
    execFileSync('mount', ['--bind', data, data]);
    mounted.push(data);
    execFileSync('mount', ['-o', 'remount,ro,bind', data]);
    for (const args of [
      ['mirror', 'moonbitlang/core', '--strict'],
      ['index', 'rebuild'],
    ]) {
      const result = await runCli(args, { cwd: registry.root });
      assert.notEqual(result.code, 0, args.join(' '));
      assert.match(result.stderr, /read-only file system/);
      assert.ok(result.stderr.includes(path.join(data, 'registry.lock')), result.stderr);
      assert.match(result.stderr, /hint: .*must be writable/);
    }
    const server = await startServe(registry.root);
    const home = await tempDir('mr-ro-home-');
    try {
      await update(server.url, home.path);
      const index = await readIndex(home.path);
      const versions = index.modules.get('moonbitlang/x');
      assert.ok(versions && versions.size > 0, 'the stored modules are served');
      for (const [version, entry] of versions) {
        await download(server.url, 'moonbitlang/x', version, entry.checksum ?? '');
      }
    } finally {
      await server.stop();
      await home.remove();
    }
    await assertConsistent(registry.root);
  });
});
