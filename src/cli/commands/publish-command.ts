import { readFile, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigSchema } from '../../config/schema.js';
import { describeError, RegistryError } from '../../core/errors.js';
import { packModule } from '../../hosted/pack-module.js';
import { archiveLimits, type PublishOutcome, preparePublish, publishModule } from '../../hosted/publish.js';
import { notice, printLine } from '../output.js';
import { openCommandRegistry } from './registry-dir.js';

interface PublishFlags {
  registry?: string;
  token?: string;
  dryRun: boolean;
  json: boolean;
}

/** The environment variable a CI job keeps its publish token in. */
const TOKEN_VARIABLE = 'MOONBIT_REGISTRY_TOKEN';

export function registerPublishCommand(program: Command): void {
  program
    .command('publish')
    .description(
      'publish a module (a folder, packed like `moon package`, or its zip) to this or a running registry',
    )
    .argument('[path]', 'module folder with moon.mod.json, or a module zip', '.')
    .option(
      '--registry <url>',
      'publish to a running registry (POST URL/api/v0/publish) instead of the local one',
    )
    .option('--token <token>', `publish token for --registry (default: $${TOKEN_VARIABLE})`)
    .option('--dry-run', 'check the module and print its index line; store nothing', false)
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      `\nWithout --registry the module goes into the registry of -d/--dir (the current folder).\nCreate a publish token with: moonbit-registry token add NAME --publish "company/*"`,
    )
    .action(async (path: string, flags: PublishFlags, command: Command) => {
      const { bytes, source } = await moduleZip(path);
      let outcome: Omit<PublishOutcome, 'line'> & { line?: string };
      if (flags.registry && !flags.dryRun) {
        const token = flags.token ?? process.env[TOKEN_VARIABLE];
        if (!token) {
          throw new RegistryError(
            'USAGE',
            `--registry needs a publish token: --token or $${TOKEN_VARIABLE}`,
            {
              hint: 'create one on the registry: moonbit-registry token add NAME --publish "owner/*"',
            },
          );
        }
        outcome = await publishRemote(flags.registry, token, bytes, source);
      } else if (flags.registry) {
        // A dry run needs no registry: the default [hosted] limits stand in for the remote ones.
        const { archive, entry } = await preparePublish(
          bytes,
          archiveLimits({ config: ConfigSchema.parse({}) }),
        );
        outcome = { ...archive, result: 'checked', line: entry.raw };
      } else {
        const registry = await openCommandRegistry(command);
        outcome = await publishModule(
          registry,
          { bytes, publisher: 'local', dryRun: flags.dryRun },
          { info: () => undefined, warn: (message) => notice(`warning: ${message}`) },
        );
      }
      if (flags.json) {
        const { module, version, checksum, result, line } = outcome;
        printLine(JSON.stringify({ module, version, checksum, result, bytes: bytes.length, line }, null, 2));
        return;
      }
      const what = `${outcome.module}@${outcome.version}`;
      if (outcome.result === 'checked') {
        notice(`${what} is ready to publish (${bytes.length} bytes, sha256 ${outcome.checksum})`);
        if (outcome.line) printLine(outcome.line);
      } else if (outcome.result === 'unchanged') {
        notice(`${what} was already published with these bytes: nothing changed`);
      } else {
        notice(`published ${what} (sha256 ${outcome.checksum})`);
      }
    });
}

/** A zip as given, or a folder packed the way `moon package` packs it. */
async function moduleZip(path: string): Promise<{ bytes: Buffer; source: string }> {
  const full = resolve(path);
  const info = await stat(full).catch(() => undefined);
  if (!info) throw new RegistryError('USAGE', `${path}: no such file or folder`);
  if (info.isDirectory()) {
    const packed = await packModule(full);
    return { bytes: packed.bytes, source: `${basename(full)}.zip` };
  }
  return { bytes: await readFile(full), source: basename(full) };
}

/** `moon publish`'s request: multipart with `token` and `file`. */
async function publishRemote(
  registry: string,
  token: string,
  bytes: Buffer,
  filename: string,
): Promise<Omit<PublishOutcome, 'line'>> {
  const url = `${registry.replace(/\/+$/, '')}/api/v0/publish`;
  const form = new FormData();
  form.set('token', token);
  form.set('file', new Blob([bytes], { type: 'application/zip' }), filename);
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', body: form, signal: AbortSignal.timeout(300_000) });
  } catch (error) {
    throw new RegistryError('UPSTREAM', `cannot reach ${url}: ${describeError(error)}`);
  }
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // An answer that is not ours (a proxy's error page): its status says enough.
  }
  if (!response.ok) {
    const why = typeof body.error === 'string' ? body.error : `HTTP ${response.status}`;
    throw new RegistryError(
      response.status === 401 ? 'AUTH' : 'UPSTREAM',
      `${url} refused the publish (${response.status}): ${why}`,
    );
  }
  return {
    module: String(body.module ?? ''),
    version: String(body.version ?? ''),
    checksum: String(body.checksum ?? ''),
    result: body.result === 'unchanged' ? 'unchanged' : 'published',
  };
}
