/** What export and import tell about their progress (a bar on a terminal, lines or nothing). */
export interface TransferProgress {
  info(message: string): void;
  /** Copying starts: this many files and bytes. */
  start(files: number, bytes: number): void;
  /** One more file of `bytes` copied (and checked). */
  advance(bytes: number): void;
  finish(): void;
}

export const silentProgress: TransferProgress = {
  info: () => undefined,
  start: () => undefined,
  advance: () => undefined,
  finish: () => undefined,
};
