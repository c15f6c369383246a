/**
 * Bytes that many holders share, such as answers being recorded or request bodies being read:
 * taking more than is left fails instead of going over, so the holders' total stays bounded
 * however many there are at once.
 */
export class ByteBudget {
  private inUse = 0;

  constructor(readonly max: number) {}

  get used(): number {
    return this.inUse;
  }

  /** Takes `bytes` if they fit; false (and nothing taken) if they do not. */
  take(bytes: number): boolean {
    if (this.inUse + bytes > this.max) return false;
    this.inUse += bytes;
    return true;
  }

  give(bytes: number): void {
    this.inUse = Math.max(0, this.inUse - bytes);
  }
}
