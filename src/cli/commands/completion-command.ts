import { Argument, type Command } from 'commander';
import { loadConfigFile } from '../../config/toml-file.js';
import { registryLayout } from '../../registry/layout.js';
import { completionScript, DYNAMIC_KINDS, type DynamicKind, SHELLS, type Shell } from '../completion.js';
import { printLine } from '../output.js';
import { registryDir } from './registry-dir.js';

export function registerCompletionCommand(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script (bash, zsh or fish)')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(SHELLS))
    .addHelpText(
      'after',
      [
        '',
        'Install:',
        '  bash: moonbit-registry completion bash > /etc/bash_completion.d/moonbit-registry',
        '        (or: source <(moonbit-registry completion bash) in ~/.bashrc)',
        '  zsh:  moonbit-registry completion zsh > "${fpath[1]}/_moonbit-registry"',
        '  fish: moonbit-registry completion fish > ~/.config/fish/completions/moonbit-registry.fish',
      ].join('\n'),
    )
    .action((shell: Shell) => {
      process.stdout.write(completionScript(program, shell));
    });

  // Called by the scripts while the user types: quiet and never failing.
  program
    .command('__complete', { hidden: true })
    .argument('<kind>')
    .action(async (kind: string, _options: unknown, command: Command) => {
      if (!(DYNAMIC_KINDS as readonly string[]).includes(kind)) return;
      try {
        const { config } = await loadConfigFile(registryLayout(registryDir(command)).configFile);
        const names: Record<DynamicKind, string[]> = {
          sources: config.sources.map((s) => s.name),
          tokens: config.server.access.tokens.map((t) => t.name),
        };
        for (const name of names[kind as DynamicKind]) printLine(name);
      } catch {
        // Not in a registry, or a broken registry.toml: no candidates.
      }
    });
}
