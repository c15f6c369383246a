/**
 * `completion bash|zsh|fish`: scripts generated from the CLI's own commands. The bash one is
 * run for real (COMP_WORDS set, the function called), including live source names.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { cliPath, runCli, runCliOk, tempDir } from '../support/cli.js';

const exec = promisify(execFile);

let scratch: { path: string; remove: () => Promise<void> };
let script: string;
let registry: string;
let binDir: string;

before(async () => {
  scratch = await tempDir('mr-completion-');
  script = path.join(scratch.path, 'completion.bash');
  await writeFile(script, (await runCliOk(['completion', 'bash'])).stdout);
  registry = path.join(scratch.path, 'my reg');
  await runCliOk(['init', registry]);
  await runCliOk(['-d', registry, 'source', 'add', 'partner', '--url', 'http://127.0.0.1:9']);
  await runCliOk(['-d', registry, 'token', 'add', 'ci-runner']);
  // The scripts call `moonbit-registry` by name, as an installed CLI would be.
  binDir = path.join(scratch.path, 'bin');
  await mkdir(binDir);
  await symlink(cliPath, path.join(binDir, 'moonbit-registry'));
  await writeFile(path.join(scratch.path, 'a-cert.pem'), '');
});

after(async () => {
  await scratch?.remove();
});

/** What bash offers after the words typed so far (the last word is the one being completed). */
async function complete(...typed: string[]): Promise<string[]> {
  // Each word exactly as COMP_WORDS holds it (quotes and backslashes included).
  const words = ['moonbit-registry', ...typed].map((w) => `'${w.replaceAll("'", "'\\''")}'`).join(' ');
  const { stdout } = await exec(
    'bash',
    [
      '-c',
      `source ${script}; COMP_WORDS=(${words}); COMP_CWORD=${typed.length}; _moonbit_registry; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { cwd: scratch.path, env: { ...process.env, HOME: scratch.path, PATH: `${binDir}:${process.env.PATH}` } },
  );
  return stdout.split('\n').filter(Boolean).sort();
}

test('bash: commands, subcommands, options and fixed values come from the CLI itself', async () => {
  await exec('bash', ['-n', script]);
  assert.deepEqual(await complete('so'), ['source']);
  assert.deepEqual(await complete('to'), ['token']);
  const top = await complete('');
  for (const name of ['init', 'source', 'mirror', 'serve', 'verify', 'token', 'completion', 'config']) {
    assert.ok(top.includes(name), `offers ${name}: ${top.join(' ')}`);
  }
  assert.ok(!top.includes('__complete'), 'the hidden helper is not offered');
  assert.deepEqual(await complete('source', 'en'), ['enable']);
  assert.deepEqual(await complete('mirror', '--s'), ['--source', '--strict']);
  assert.deepEqual(await complete('source', 'add', 'x', '--type', ''), [
    'custom',
    'moonbit-registry',
    'mooncakes',
  ]);
  assert.deepEqual(await complete('completion', ''), ['bash', 'fish', 'zsh']);
  assert.deepEqual(await complete('serve', '--tls-cert', 'a-c'), ['a-cert.pem'], 'files for <file> options');
  // An option's value is not taken for a command: `-s mirror` does not start `mirror`.
  assert.deepEqual(await complete('mirror', '-s', 'mirror', '--j'), ['--json']);
});

test('bash: source and token names are read live from the registry given with -d', async () => {
  // The path as the user typed it: quoted, backslash-escaped, or from ~.
  assert.deepEqual(await complete('-d', `"${registry}"`, 'source', 'disable', ''), ['mooncakes', 'partner']);
  assert.deepEqual(await complete('-d', registry.replace(' ', '\\ '), 'source', 'disable', ''), [
    'mooncakes',
    'partner',
  ]);
  assert.deepEqual(await complete('--dir', '~/my\\ reg', 'source', 'disable', ''), ['mooncakes', 'partner']);
  assert.deepEqual(await complete('-d', `'${registry}'`, 'mirror', '--source', 'pa'), ['partner']);
  assert.deepEqual(await complete('-d', `"${registry}"`, 'token', 'remove', ''), ['ci-runner']);
  // Outside a registry: no candidates and no error text in the terminal.
  assert.deepEqual(await complete('source', 'disable', ''), []);
});

test('zsh and fish scripts are generated (and parse where the shell is installed)', async () => {
  const zsh = await runCliOk(['completion', 'zsh']);
  assert.match(zsh.stdout, /^#compdef moonbit-registry\n/);
  const fish = await runCliOk(['completion', 'fish']);
  assert.match(
    fish.stdout,
    /^complete -c moonbit-registry -n '__fish_seen_subcommand_from source; and not __fish_seen_subcommand_from add list default enable disable remove' -a enable$/m,
  );
  assert.match(fish.stdout, /-l source -r -a '\(moonbit-registry __complete sources 2>\/dev\/null\)'/);
  for (const [shell, text] of [
    ['zsh', zsh.stdout],
    ['fish', fish.stdout],
  ] as const) {
    const file = path.join(scratch.path, `completion.${shell}`);
    await writeFile(file, text);
    const installed = await exec('which', [shell]).then(
      () => true,
      () => false,
    );
    if (installed) await exec(shell, ['-n', file]);
  }
  const bad = await runCli(['completion', 'tcsh']);
  assert.equal(bad.code, 1);
  assert.match(
    bad.stderr,
    /value 'tcsh' is invalid for argument 'shell'\. Allowed choices are bash, zsh, fish/,
  );
});
