import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { moveFile, renameInto } from '../../src/fs/move-file.js';

test('moveFile makes the target folder and moves the bytes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mbr-move-'));
  try {
    await writeFile(join(dir, 'a'), 'bytes');
    await moveFile(join(dir, 'a'), join(dir, 'x', 'y', 'b'));
    assert.equal(await readFile(join(dir, 'x', 'y', 'b'), 'utf8'), 'bytes');
    await assert.rejects(readFile(join(dir, 'a')), { code: 'ENOENT' });
    await assert.rejects(renameInto(join(dir, 'missing'), join(dir, 'c')), { code: 'ENOENT' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('renameInto survives its folder being removed meanwhile (gc emptying folders while a server stores)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mbr-move-'));
  const folder = join(dir, 'owner', 'name');
  // What gc does to folders it found empty: each removed once, racing one rename into them.
  const removeOnce = async () => {
    for (const at of [folder, join(dir, 'owner')]) await rmdir(at).catch(() => undefined);
  };
  try {
    for (let i = 0; i < 300; i++) {
      await writeFile(join(dir, `t${i}`), String(i));
      await Promise.all([renameInto(join(dir, `t${i}`), join(folder, `${i}.zip`)), removeOnce()]);
      assert.equal(await readFile(join(folder, `${i}.zip`), 'utf8'), String(i));
      await rm(join(folder, `${i}.zip`));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
