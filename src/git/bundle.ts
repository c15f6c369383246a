import { RegistryError } from '../core/errors.js';
import { runGit } from './run-git.js';

/**
 * An index repository as a real `git bundle` of branch main: the served index's part of a transfer
 * bundle (transfer/), and the shared history replicas take from the bucket (coordination/).
 */
export const BUNDLED_REF = 'refs/heads/main';

/** Writes a bundle of `tip` (as refs/heads/main), without what `prerequisite` already has. */
export async function createIndexBundle(
  gitDir: string,
  file: string,
  prerequisite: string | undefined,
): Promise<void> {
  const range = prerequisite ? [BUNDLED_REF, `^${prerequisite}`] : [BUNDLED_REF];
  await runGit(['--git-dir', gitDir, 'bundle', 'create', '--quiet', file, ...range], {
    describe: 'git bundle create',
  });
}

export async function isAncestor(gitDir: string, ancestor: string, descendant: string): Promise<boolean> {
  const { code } = await runGit(['--git-dir', gitDir, 'merge-base', '--is-ancestor', ancestor, descendant], {
    okCodes: [1],
  });
  return code === 0;
}

export async function hasCommit(gitDir: string, commit: string): Promise<boolean> {
  const { code } = await runGit(['--git-dir', gitDir, 'cat-file', '-e', `${commit}^{commit}`], {
    okCodes: [1, 128],
  });
  return code === 0;
}

/**
 * Checks the bundle against `gitDir` (git says whether its prerequisites are there and the
 * file is whole) and copies its objects in. Objects alone change nothing anyone sees: no ref
 * moves here. Returns the commit the bundle's main points to.
 */
export async function unbundleIndex(gitDir: string, file: string): Promise<string> {
  try {
    await runGit(['--git-dir', gitDir, 'bundle', 'verify', '--quiet', file], {
      describe: 'git bundle verify',
    });
  } catch (error) {
    throw new RegistryError(
      'INVALID',
      `the index in the bundle does not apply here: ${(error as Error).message}`,
    );
  }
  const { stdout } = await runGit(['--git-dir', gitDir, 'bundle', 'unbundle', file], {
    describe: 'git bundle unbundle',
  });
  const line = stdout
    .toString('utf8')
    .split('\n')
    .find((l) => l.endsWith(` ${BUNDLED_REF}`));
  const commit = line?.split(' ')[0];
  if (!commit) throw new RegistryError('INVALID', 'the index in the bundle has no main branch');
  return commit;
}
