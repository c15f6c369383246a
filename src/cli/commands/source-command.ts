import type { Command } from 'commander';
import type { RegistryConfig } from '../../config/schema.js';
import { addSource, removeSource, setDefaultSource, setSourceEnabled } from '../../config/source-edits.js';
import { updateConfigFile } from '../../config/toml-file.js';
import { notice, printLine } from '../output.js';
import { openCommandRegistry, parseInteger } from './registry-dir.js';

interface AddOptions {
  url?: string;
  indexUrl?: string;
  priority?: number;
  type?: string;
  packageUrlPattern?: string;
  fromPreset?: string;
  git?: string;
  refPattern?: string;
  path?: string;
}

export function registerSourceCommand(program: Command): void {
  const source = program
    .command('source')
    .description('manage the upstream registries this registry mirrors');

  source
    .command('add')
    .description('add an upstream source')
    .argument('<name>', 'a short name for the source (letters, digits, - and _)')
    .option('--url <url>', "the source's base URL (archives at URL/user/...)")
    .option('--index-url <url>', "the source's git index URL (default: URL/git/index)")
    .option(
      '--priority <n>',
      'lower number wins when sources overlap (default: below all others)',
      parseInteger('--priority', 0, 1_000_000),
    )
    .option('--type <type>', 'mooncakes | moonbit-registry | custom (default: custom)')
    .option(
      '--package-url-pattern <pattern>',
      'archive URL template with {url}, {key}, {module}, {username}, {name}, {version}',
    )
    .option('--from-preset <preset>', 'fill in a known registry (mooncakes)')
    .option('--git <url>', "a module's git repository (https, ssh, file): each release tag is a version")
    .option(
      '--ref-pattern <glob>',
      'with --git: the tags that are versions (default: semver tags, v optional)',
    )
    .option('--path <dir>', "with --git: the module's folder in the repository (default: the root)")
    .action(async (name: string, options: AddOptions, command: Command) => {
      await editSources(command, (raw) =>
        addSource(raw, {
          name,
          url: options.url,
          indexUrl: options.indexUrl,
          priority: options.priority,
          type: options.type,
          packageUrlPattern: options.packageUrlPattern,
          preset: options.fromPreset,
          git: options.git,
          refPattern: options.refPattern,
          path: options.path,
        }),
      );
    });

  source
    .command('list')
    .description('show the configured sources')
    .action(async (_options: unknown, command: Command) => {
      const registry = await openCommandRegistry(command);
      printLine(formatSourceList(registry.config, (await registry.hosted.head()) !== undefined));
    });

  source
    .command('default')
    .description('make a source the default one for `mirror` without -s')
    .argument('<name>')
    .action(async (name: string, _options: unknown, command: Command) => {
      await editSources(command, (raw) => setDefaultSource(raw, name));
    });

  for (const [verb, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    source
      .command(verb)
      .description(
        `${verb} a source (its versions ${enabled ? 'return to' : 'leave'} the served index at the next mirror)`,
      )
      .argument('<name>')
      .action(async (name: string, _options: unknown, command: Command) => {
        await editSources(command, (raw) => setSourceEnabled(raw, name, enabled));
      });
  }

  source
    .command('remove')
    .description('remove a source (its archives stay on disk)')
    .argument('<name>')
    .action(async (name: string, _options: unknown, command: Command) => {
      await editSources(command, (raw) => removeSource(raw, name));
    });
}

/** Applies one edit to registry.toml; a no-op edit prints its notice and writes nothing. */
async function editSources(command: Command, edit: (raw: Record<string, unknown>) => string): Promise<void> {
  const registry = await openCommandRegistry(command);
  const { changed, result } = await updateConfigFile(registry.configFile, edit);
  if (changed) printLine(result);
  else notice(result);
}

/** The layout of the user's documentation (seed multiple-sources.txt). */
/** The seeds' layout; the hosted source follows once something was published or it is exclusive. */
export function formatSourceList(config: RegistryConfig, hostedInUse = false): string {
  if (config.sources.length === 0) return 'No sources configured.';
  const lines = ['Configured sources:'];
  for (const source of config.sources) {
    const isDefault = source.name === config.default_source ? ' (default)' : '';
    lines.push(`${source.name}${isDefault} [${source.enabled ? 'enabled' : 'disabled'}]`);
    lines.push(`Type: ${source.type}`);
    if (source.type === 'git') {
      // Its URL and index URL are placeholders: the repository is what it is.
      lines.push(`Repository: ${source.git_url}`);
      if (source.path) lines.push(`Path: ${source.path}`);
      lines.push(`Tags: ${source.ref_pattern ?? 'semver versions, v optional'}`);
    } else {
      lines.push(`URL: ${source.url}`);
      lines.push(`Index: ${source.index_url} (${source.index_type})`);
    }
    lines.push(`Priority: ${source.priority}`);
  }
  const { hosted } = config;
  if (!hostedInUse && hosted.exclusive.length === 0) return lines.join('\n');
  lines.push(`${hosted.name} [hosted: modules published to this registry]`);
  lines.push('Type: hosted');
  lines.push(`Priority: ${hosted.priority}`);
  if (hosted.exclusive.length > 0) lines.push(`Exclusive: ${hosted.exclusive.join(', ')}`);
  return lines.join('\n');
}
