import type { Command } from 'commander';

/** A command's subcommands as `--help` lists them (hidden ones such as `__complete` left out). */
export function visibleSubcommands(command: Command): Command[] {
  // commander keeps `{ hidden: true }` in a private field and has no public getter for it.
  return command.commands.filter((sub) => (sub as unknown as { _hidden?: boolean })._hidden !== true);
}
