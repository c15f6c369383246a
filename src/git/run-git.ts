import { spawn } from 'node:child_process';
import { RegistryError } from '../core/errors.js';

export interface RunGitOptions {
  cwd?: string;
  /** Extra environment; `GIT_CONFIG_*` pairs from `gitConfigEnv` go here. */
  env?: Record<string, string>;
  input?: string | Buffer;
  /**
   * Kill git after this many ms without any output. Network commands run with `--progress`
   * so a slow but live transfer keeps going while a dead host fails in bounded time.
   */
  idleTimeoutMs?: number;
  /** Text for error messages instead of the argument list (which may name a URL). */
  describe?: string;
  /**
   * Exit codes besides 0 that are answers, not failures: `push --porcelain` exits 1 when it
   * rejects a ref and says why on stdout; `merge-base --is-ancestor` answers "no" with 1.
   */
  okCodes?: number[];
}

export interface GitResult {
  stdout: Buffer;
  stderr: string;
  code: number;
}

/** Runs git without a shell, never prompting, and fails with the tail of its stderr. */
export function runGit(args: string[], options: RunGitOptions = {}): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, {
      cwd: options.cwd,
      env: { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group, so a timeout also stops helpers such as git-remote-https.
      detached: options.idleTimeoutMs !== undefined,
    });
    const out: Buffer[] = [];
    let err = '';
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      if (!options.idleTimeoutMs) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        timedOut = true;
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, options.idleTimeoutMs);
    };
    arm();
    child.stdout.on('data', (chunk: Buffer) => {
      out.push(chunk);
      arm();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err = (err + chunk.toString('utf8')).slice(-8000);
      arm();
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(
        new RegistryError('GIT', `cannot run git: ${error.message}`, { hint: 'install git (2.31 or newer)' }),
      );
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const what = options.describe ?? `git ${args[0] ?? ''}`;
      if (timedOut) {
        reject(
          new RegistryError(
            'GIT',
            `${what} timed out after ${Math.round((options.idleTimeoutMs ?? 0) / 1000)}s without progress`,
          ),
        );
      } else if (code !== 0 && !options.okCodes?.includes(code ?? -1)) {
        reject(new RegistryError('GIT', `${what} failed: ${lastMeaningfulLine(err) || `exit code ${code}`}`));
      } else {
        resolve({ stdout: Buffer.concat(out), stderr: err, code: code ?? 0 });
      }
    });
    child.stdin.on('error', () => {
      // git may exit before reading all input; the exit code tells what happened.
    });
    child.stdin.end(options.input);
  });
}

/** The last lines of git's stderr that say something (progress lines do not). */
export function lastMeaningfulLine(stderr: string): string {
  const lines = stderr
    .split(/[\r\n]+/)
    .map((line) => line.trim())
    .filter(
      (line) =>
        line && !/^(remote: )?(Counting|Compressing|Receiving|Resolving|Enumerating|Total)/.test(line),
    );
  return lines.slice(-2).join(' ');
}

/**
 * Whether a network git command failed because the server refused (or wanted) credentials:
 * git's own wording, since bare status digits would also match ports and paths.
 */
export function gitAuthRefused(reason: string): boolean {
  return /Authentication failed|returned error: 40[13]\b|could not read Username|Permission denied \(publickey/i.test(
    reason,
  );
}

/**
 * Passes git configuration through the environment (`GIT_CONFIG_COUNT`, git >= 2.31), so
 * credentials reach git without being written to any config file or shown in `ps`.
 */
export function gitConfigEnv(pairs: Array<[string, string]>): Record<string, string> {
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(pairs.length) };
  pairs.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  return env;
}
