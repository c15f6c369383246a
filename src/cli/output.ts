import { CommanderError } from 'commander';
import { describeError, isRegistryError } from '../core/errors.js';

/** Everything the CLI prints for a failure: one line (plus a hint line for known errors), no stack. */
export function printError(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode; // commander already printed it
  if (isRegistryError(error)) {
    process.stderr.write(`error: ${error.message}\n`);
    if (error.hint) process.stderr.write(`hint: ${error.hint}\n`);
    return 1;
  }
  process.stderr.write(`error: ${describeError(error)}\n`);
  if (process.env.MOONBIT_REGISTRY_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  return 1;
}

export function printLine(text = ''): void {
  process.stdout.write(`${text}\n`);
}

export function notice(text: string): void {
  process.stderr.write(`${text}\n`);
}
