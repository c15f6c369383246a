import { spawn } from 'node:child_process';

/**
 * Environment for every git the test support runs: no user or system config (a developer's
 * `url.insteadOf` or credential helper must not leak into tests), never prompt.
 */
export function isolatedGitEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  // Inherited GIT_DIR, GIT_INDEX_FILE... (e.g. when run from a git hook) would redirect every git.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('GIT_')),
  );
  return {
    ...inherited,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: 'true',
    ...extra,
  };
}

export interface GitOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  timeoutMs?: number;
}

export class GitError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'GitError';
  }
}

/** Runs git without a shell; resolves with stdout, rejects with stderr in the message. */
export function git(args: string[], options: GitOptions = {}): Promise<string> {
  return gitBuffer(args, options).then((out) => out.toString('utf8'));
}

export function gitBuffer(args: string[], options: GitOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, {
      cwd: options.cwd,
      env: isolatedGitEnv(options.env),
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs,
      killSignal: 'SIGKILL',
    });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      err = (err + chunk.toString('utf8')).slice(-16_000);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(Buffer.concat(out));
      const why = signal ? `killed by ${signal}` : `exit code ${code}`;
      reject(new GitError(`git ${args.join(' ')} failed (${why}): ${err.trim()}`, code, err));
    });
    // git may exit before reading its input; the exit code tells what happened.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input);
  });
}
