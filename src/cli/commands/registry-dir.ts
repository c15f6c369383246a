import { type Command, InvalidArgumentError } from 'commander';

/** The registry folder for a command: `-d/--dir` anywhere on the line, else the current folder. */
export function registryDir(command: Command): string {
  const { dir } = command.optsWithGlobals<{ dir?: string }>();
  return dir ?? process.cwd();
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
