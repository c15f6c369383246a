import { Command } from 'commander';
import { closeClusters } from '../coordination/cluster.js';
import { registerCompletionCommand } from './commands/completion-command.js';
import { registerConfigCommand } from './commands/config-command.js';
import { registerGcCommand } from './commands/gc-command.js';
import { registerIndexCommand } from './commands/index-command.js';
import { registerInitCommand } from './commands/init-command.js';
import { registerMirrorCommand } from './commands/mirror-command.js';
import { registerPublishCommand } from './commands/publish-command.js';
import { registerServeCommand } from './commands/serve-command.js';
import { registerSourceCommand } from './commands/source-command.js';
import { registerStatusCommand } from './commands/status-command.js';
import { registerSyncCommand } from './commands/sync-command.js';
import { registerTokenCommand } from './commands/token-command.js';
import { registerTransferCommands } from './commands/transfer-commands.js';
import { registerUpdateCommand } from './commands/update-command.js';
import { registerVerifyCommand } from './commands/verify-command.js';
import { registerYankCommands } from './commands/yank-command.js';
import { printError } from './output.js';
import { packageVersion } from './package-info.js';

export function buildProgram(): Command {
  const program = new Command('moonbit-registry')
    .description(
      'Run your own MoonBit package registry: mirror upstream registries and serve them to `moon`.',
    )
    .version(packageVersion(), '-V, --version')
    .option('-d, --dir <dir>', 'registry folder (default: the current folder)')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) });
  registerInitCommand(program);
  registerSourceCommand(program);
  registerMirrorCommand(program);
  registerIndexCommand(program);
  registerSyncCommand(program);
  registerServeCommand(program);
  registerPublishCommand(program);
  registerYankCommands(program);
  registerConfigCommand(program);
  registerUpdateCommand(program);
  registerVerifyCommand(program);
  registerGcCommand(program);
  registerTransferCommands(program);
  registerStatusCommand(program);
  registerTokenCommand(program);
  registerCompletionCommand(program);
  // Every subcommand fails like the root: an exception we turn into one line and an exit code.
  for (const command of program.commands) applyExitOverride(command);
  return program;
}

function applyExitOverride(command: Command): void {
  command.exitOverride().showHelpAfterError('(add --help for usage)');
  for (const sub of command.commands) applyExitOverride(sub);
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    process.exitCode = printError(error);
  } finally {
    await closeClusters(); // an open Redis connection would keep the process alive
  }
}
