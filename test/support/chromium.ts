/**
 * The browser for the web UI test: Debian's Chromium, driven by playwright-core (which never
 * downloads browsers). Installed with apt when missing and we are root; otherwise the test is
 * skipped, except on CI, where a missing browser must fail rather than pass silently.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export type ChromiumCheck = { ok: true; path: string } | { ok: false; reason: string };

/** Apt's package lists are fresh enough when some exist and are less than a day old. */
function aptListsFresh(): boolean {
  const dir = '/var/lib/apt/lists';
  try {
    const lists = readdirSync(dir).filter((name) => name.endsWith('_Packages'));
    return lists.some((name) => Date.now() - statSync(`${dir}/${name}`).mtimeMs < 86_400_000);
  } catch {
    return false;
  }
}

function run(command: string, args: string[]): { ok: boolean; output: string } {
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    timeout: 15 * 60_000,
  });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}${result.error ? String(result.error) : ''}`;
  return { ok: result.status === 0, output: output.slice(-2000) };
}

/** Makes sure Chromium is there (installing it if we may); says why not otherwise. */
export function ensureChromium(): ChromiumCheck {
  if (existsSync(CHROMIUM_PATH)) return { ok: true, path: CHROMIUM_PATH };
  const notes: string[] = [];
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root) {
    notes.push('not root, so it cannot be installed here (run: sudo apt-get install -y chromium)');
  } else {
    if (!aptListsFresh()) {
      const update = run('apt-get', ['update']);
      if (!update.ok) notes.push(`apt-get update failed:\n${update.output}`);
    }
    const install = run('apt-get', ['install', '-y', 'chromium']);
    if (!install.ok) notes.push(`apt-get install -y chromium failed:\n${install.output}`);
  }
  if (existsSync(CHROMIUM_PATH)) return { ok: true, path: CHROMIUM_PATH };
  return {
    ok: false,
    reason: `${CHROMIUM_PATH} is missing; ${notes.join('; ') || 'install did not provide it'}`,
  };
}

/**
 * For a test's `skip` option: false when the browser is ready; the reason to skip when it is
 * not and we are not on CI. On CI a missing browser throws, failing the test file.
 */
export function chromiumOrSkip(): { path: string; skip: false } | { path: undefined; skip: string } {
  const check = ensureChromium();
  if (check.ok) return { path: check.path, skip: false };
  if (process.env.CI) throw new Error(`the web UI test needs Chromium on CI: ${check.reason}`);
  return { path: undefined, skip: `web UI browser test skipped: ${check.reason}` };
}
