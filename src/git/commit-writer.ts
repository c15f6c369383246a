import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { RegistryError } from '../core/errors.js';
import { runGit } from './run-git.js';

export interface CommitRequest {
  gitDir: string;
  branch: string;
  /** The commit the branch points at now; the new commit goes on top of it. */
  parent: string | undefined;
  message: string;
  /** path -> new content, or null to delete the path. */
  changes: Map<string, Buffer | null>;
  author?: { name: string; email: string };
  /** Commit time in seconds; now by default. A fixed time makes the commit id reproducible. */
  time?: number;
}

/**
 * Writes one commit with `git fast-import`: objects first, then the branch moves. fast-import
 * refuses a non-fast-forward update, so the served branch can only move forward, and a killed
 * process leaves the old branch (and at worst an unreferenced pack) behind.
 */
export async function writeCommit(request: CommitRequest): Promise<string> {
  const author = request.author ?? { name: 'moonbit-registry', email: 'moonbit-registry@localhost' };
  const now = request.time ?? Math.floor(Date.now() / 1000);
  const ref = `refs/heads/${request.branch}`;
  const parts: Buffer[] = [];
  const push = (text: string) => parts.push(Buffer.from(text, 'utf8'));
  const message = Buffer.from(request.message, 'utf8');
  push(`commit ${ref}\nmark :1\ncommitter ${author.name} <${author.email}> ${now} +0000\n`);
  push(`data ${message.length}\n`);
  parts.push(message);
  push('\n');
  if (request.parent) push(`from ${request.parent}\n`);
  for (const [path, content] of [...request.changes].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (content === null) {
      push(`D ${quotePath(path)}\n`);
    } else {
      push(`M 100644 inline ${quotePath(path)}\ndata ${content.length}\n`);
      parts.push(content);
      push('\n');
    }
  }
  push('\nget-mark :1\n');
  let stdout: Buffer;
  try {
    ({ stdout } = await runGit(['--git-dir', request.gitDir, 'fast-import', '--quiet', '--done'], {
      input: Buffer.concat([...parts, Buffer.from('done\n')]),
      describe: `writing a commit to ${request.gitDir}`,
    }));
  } catch (error) {
    await removeCrashReports(request.gitDir); // the error says it all; leave nothing behind
    throw error;
  }
  const oid = stdout.toString('utf8').trim();
  if (!/^[0-9a-f]{40,64}$/.test(oid))
    throw new RegistryError('GIT', `fast-import returned no commit id (${oid})`);
  return oid;
}

/** C-style quoting, which fast-import accepts for any path (UTF-8 bytes pass through). */
function quotePath(path: string): string {
  return `"${path.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** fast-import leaves `fast_import_crash_<pid>` in the repository when it fails (a full disk). */
async function removeCrashReports(gitDir: string): Promise<void> {
  const names = await readdir(gitDir).catch(() => [] as string[]);
  await Promise.all(
    names
      .filter((name) => name.startsWith('fast_import_crash_'))
      .map((name) => rm(join(gitDir, name), { force: true }).catch(() => undefined)),
  );
}
