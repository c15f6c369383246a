import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { buildProgram } from '../../src/cli/main.js';
import { commandReference, configReference, replaceSection } from '../../src/cli/reference-docs.js';
import { ConfigSchema } from '../../src/config/schema.js';

const readme = () => readFile(new URL('../../README.md', import.meta.url), 'utf8');

test('the README reference is what the code says (run `npm run docs` after changing commands or keys)', async () => {
  const text = await readme();
  let fresh = replaceSection(text, 'commands', commandReference(buildProgram()));
  fresh = replaceSection(fresh, 'config', configReference());
  assert.equal(text, fresh);
});

test('every command and every registry.toml key is in the reference', () => {
  const commands = commandReference(buildProgram());
  for (const name of [
    'init',
    'source add',
    'mirror',
    'serve',
    'status',
    'token add',
    'verify',
    'completion',
  ]) {
    assert.match(commands, new RegExp(`^#### \`moonbit-registry ${name}\\b`, 'm'), name);
  }
  assert.doesNotMatch(commands, /__complete/, 'hidden commands stay hidden');
  const config = configReference();
  const server = ConfigSchema.parse({}).server;
  for (const key of Object.keys(server).filter((k) => k !== 'access')) {
    assert.match(
      config,
      new RegExp(`^\\| \`${key}\` \\|.*\\| [A-Z\`\\[]`, 'm'),
      `server.${key} has a description`,
    );
  }
  for (const key of [
    'mode',
    'allow',
    'tokens',
    'concurrency',
    'sync_interval',
    'priority',
    'package_url_pattern',
  ]) {
    assert.match(config, new RegExp(`^\\| \`${key}\` \\|`, 'm'), key);
  }
});

test('a section marker missing from the README is an error, not a silent no-op', () => {
  assert.throws(() => replaceSection('no markers here', 'commands', 'x'), /no <!-- generated:commands/);
});
