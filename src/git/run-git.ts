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
}

export interface GitResult {
  stdout: Buffer;
  stderr: string;
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
      } else if (code !== 0) {
        reject(new RegistryError('GIT', `${what} failed: ${lastMeaningfulLine(err) || `exit code ${code}`}`));
      } else {
        resolve({ stdout: Buffer.concat(out), stderr: err });
      }
    });
    child.stdin.on('error', () => {
      // git may exit before reading all input; the exit code tells what happened.
    });
    child.stdin.end(options.input);
  });
}

function lastMeaningfulLine(stderr: string): string {
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
