import { type Command, InvalidArgumentError } from 'commander';
import { openRegistry, type Registry } from '../../registry/registry.js';
import { notice } from '../output.js';

/** The registry folder for a command: `-d/--dir` anywhere on the line, else the current folder. */
export function registryDir(command: Command): string {
  const { dir } = command.optsWithGlobals<{ dir?: string }>();
  return dir ?? process.cwd();
}

/**
 * Opens the command's registry and prints, on stderr, what registry.toml says that deserves a
 * word (a moonbit-registry-tools key) and what opening did (a data folder made or taken over).
 * `warn` receives later warnings too (a failed auto_push); serve passes its logger.
 */
export async function openCommandRegistry(
  command: Command,
  log: { notice(message: string): void; warn(message: string): void } = {
    notice: (message) => notice(`notice: ${message}`),
    warn: (message) => notice(`warning: ${message}`),
  },
): Promise<Registry> {
  const registry = await openRegistry(registryDir(command), log);
  for (const line of registry.configFile.notices) log.notice(line);
  return registry;
}

/** A commander argument parser for a bounded whole number. */
export function parseInteger(name: string, min: number, max: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}.`);
    }
    return parsed;
  };
}
