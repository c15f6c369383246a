import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { RegistryError } from '../../src/core/errors.js';
import { moveFile } from '../../src/fs/move-file.js';
import { clearDeadTemps, processTempDir } from '../../src/fs/temp-dirs.js';
import { acquireRegistryLock } from '../../src/registry/lock.js';
import { createArchiveStore } from '../../src/store/archive-store.js';
import { FsBlobStore } from '../../src/store/blob/fs-blob-store.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mr-store-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const SUM = 'ab'.repeat(32);

test('archive paths are built from validated names only, under the store', async () => {
  const store = createArchiveStore(new FsBlobStore(dir));
  assert.equal(
    store.locate('moonbitlang/core', '0.1.20260213+3382e0600', SUM.toUpperCase()),
    join(dir, 'packages', 'moonbitlang', 'core', '0.1.20260213+3382e0600', `${SUM}.zip`),
  );
  for (const [module, version, sum] of [
    ['../etc/passwd', '1.0.0', SUM],
    ['a/..', '1.0.0', SUM],
    ['a/b', '../../1.0.0', SUM],
    ['a/b', '1.0.0', '../x'],
  ] as const) {
    assert.throws(() => store.keyFor(module, version, sum), RegistryError, `${module} ${version} ${sum}`);
  }
  assert.equal(await store.has('a/b', '1.0.0', SUM), false);
  const path = store.locate('a/b', '1.0.0', SUM);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, 'zip');
  assert.equal(await store.size('a/b', '1.0.0', SUM), 3);
  assert.equal(await store.has('a/b', '1.0.0', SUM), true);
});

test('one writer at a time; a lock whose process died is taken over', async () => {
  const target = join(dir, 'data', 'registry');
  const first = await acquireRegistryLock(target, 'mirror');
  await assert.rejects(acquireRegistryLock(target, 'index rebuild'), (error: unknown) => {
    assert.ok(error instanceof RegistryError && error.code === 'LOCKED');
    assert.match(error.message, new RegExp(`another mirror \\(pid ${process.pid} on `));
    return true;
  });
  first.assertHeld();
  await first.release();

  // A holder that is gone: a finished child's pid, recorded as this host's owner.
  const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid;
  const stale = await acquireRegistryLock(target, 'mirror');
  await writeFile(
    `${target}.owner.json`,
    JSON.stringify({ pid: dead, host: hostname(), what: 'mirror', since: new Date().toISOString() }),
  );
  const takeover = await acquireRegistryLock(target, 'mirror');
  takeover.assertHeld();
  await takeover.release();
  await stale.release(); // the old handle finds its lock gone and does not fail
});

test('temp folders: only dead processes of this machine lose theirs', async () => {
  const root = join(dir, 'tmp');
  const mine = await processTempDir(root);
  await writeFile(join(mine.path, 'partial.part'), 'x');
  const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid as number;
  const folders = {
    dead: `${hostname()}-${dead}`,
    alive: `${hostname()}-${process.ppid}`,
    otherHost: `another-machine-${dead}`,
  };
  for (const name of Object.values(folders)) await mkdir(join(root, name), { recursive: true });
  await writeFile(join(root, 'legacy.part'), 'x'); // an older layout's flat temp file
  await clearDeadTemps(root);
  const left = (await readdir(root)).sort();
  assert.deepEqual(left, [folders.otherHost, folders.alive, `${hostname()}-${process.pid}`].sort());
  await mine.remove();
  assert.ok(!(await readdir(root)).includes(`${hostname()}-${process.pid}`));
});

test('moveFile moves within a file system and across one (a packages/ folder on another disk)', async (t) => {
  const local = await mkdtemp(join(tmpdir(), 'mr-move-'));
  const otherDisk = existsSync('/dev/shm') ? await mkdtemp('/dev/shm/mr-move-') : undefined;
  t.after(async () => {
    await rm(local, { recursive: true, force: true });
    if (otherDisk) await rm(otherDisk, { recursive: true, force: true });
  });
  const source = join(local, 'a.zip');
  await writeFile(source, 'bytes');
  await moveFile(source, join(local, 'sub', 'b.zip'));
  assert.equal(await readFile(join(local, 'sub', 'b.zip'), 'utf8'), 'bytes');
  assert.equal(existsSync(source), false);
  if (!otherDisk || statSync(otherDisk).dev === statSync(local).dev) {
    t.diagnostic('no second file system here (/dev/shm): the EXDEV path is not exercised');
    return;
  }
  const far = join(otherDisk, 'c.zip');
  await writeFile(far, 'far bytes');
  await moveFile(far, join(local, 'deep', 'c.zip'));
  assert.equal(await readFile(join(local, 'deep', 'c.zip'), 'utf8'), 'far bytes');
  assert.equal(existsSync(far), false);
  assert.deepEqual(await readdir(join(local, 'deep')), ['c.zip'], 'no temp file is left beside it');
});
