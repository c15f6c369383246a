import type { Command } from 'commander';
import { addToken, removeToken, setAdminToken } from '../../config/token-edits.js';
import { updateConfigFile } from '../../config/toml-file.js';
import { generateToken, tokenSha256 } from '../../core/access-token.js';
import { RegistryError } from '../../core/errors.js';
import { isModuleGlob } from '../../core/module-glob.js';
import { notice, printLine } from '../output.js';
import { openCommandRegistry } from './registry-dir.js';

export function registerTokenCommand(program: Command): void {
  const token = program
    .command('token')
    .description('manage the tokens that read a private registry ([server.access]) and the admin token');

  token
    .command('add')
    .description('create a token: printed once on stdout, only its SHA-256 is stored in registry.toml')
    .argument('[name]', 'who or what uses it, e.g. ci or alice (letters, digits, - and _)')
    .option('--admin', 'create the admin token for POST /admin/sync instead (replaces the old one)')
    .option(
      '--publish <globs...>',
      'the token may also publish these modules ("company/*", "company/**", "moonbitlang/x"); it reads too',
    )
    .action(
      async (
        name: string | undefined,
        options: { admin?: boolean; publish?: string[] },
        command: Command,
      ) => {
        const registry = await openCommandRegistry(command);
        if (!options.admin && name === undefined) {
          command.error('error: missing argument: name (or --admin)', { exitCode: 2 });
        }
        if (options.admin && options.publish) {
          throw new RegistryError(
            'USAGE',
            '--admin and --publish go to different tokens: create them one by one',
          );
        }
        for (const glob of options.publish ?? []) {
          if (!isModuleGlob(glob)) {
            throw new RegistryError('USAGE', `--publish "${glob}" is not a module glob`, {
              hint: 'for example "company/*" (one level), "company/**" (nested too) or "owner/name"',
            });
          }
        }
        const secret = generateToken();
        const sha256 = tokenSha256(secret);
        await updateConfigFile(registry.configFile, (raw) =>
          options.admin
            ? setAdminToken(raw, sha256)
            : addToken(raw, name as string, sha256, new Date().toISOString(), options.publish),
        );
        printLine(secret);
        if (options.admin) {
          notice('Admin token created (shown once). Use it as: Authorization: Bearer <token>');
          return;
        }
        notice(`Token "${name}" created (shown once; registry.toml keeps only its SHA-256).`);
        if (options.publish) {
          notice(`It may publish: ${options.publish.join(', ')}`);
          notice(
            'Publish: moonbit-registry publish --registry <url> --token <token>, or moon publish (see README)',
          );
        }
        notice(`Clients: MOONCAKES_REGISTRY=https://${name}:<token>@<host> moon update`);
        if (registry.config.server.access.mode !== 'credentials') {
          notice(
            `note: [server.access] mode is "${registry.config.server.access.mode}"; tokens are checked for reading only with: moonbit-registry config server.access.mode credentials${options.publish ? ' (publishing always needs one)' : ''}`,
          );
        }
        notice('A running serve takes it on SIGHUP (kill -HUP <pid>) or a restart.');
      },
    );

  token
    .command('list')
    .description(
      'show the tokens (names, dates, what each may publish; the tokens themselves are not stored)',
    )
    .action(async (_options: unknown, command: Command) => {
      const registry = await openCommandRegistry(command);
      const { access, admin_token, admin_token_sha256 } = registry.config.server;
      printLine(`access mode: ${access.mode}`);
      if (access.tokens.length === 0) printLine('no tokens');
      for (const t of access.tokens) {
        const publish = t.publish ? `  publishes ${t.publish.join(', ')}` : '  read only';
        printLine(`${t.name}  created ${t.created ?? 'unknown'}${publish}`);
      }
      printLine(`admin token: ${admin_token_sha256 || admin_token ? 'set' : 'none'}`);
    });

  token
    .command('remove')
    .description('revoke a token (a running serve drops it on SIGHUP or restart)')
    .argument('<name>', 'the token name')
    .action(async (name: string, _options: unknown, command: Command) => {
      const registry = await openCommandRegistry(command);
      const { file } = await updateConfigFile(registry.configFile, (raw) => removeToken(raw, name));
      notice(`Token "${name}" removed. A running serve drops it on SIGHUP (kill -HUP <pid>) or a restart.`);
      const { access } = file.config.server;
      if (access.mode === 'credentials' && access.tokens.length === 0) {
        notice(
          'warning: that was the last token: after SIGHUP every request is refused, and serve will not start until one is added (token add NAME)',
        );
      }
    });
}
