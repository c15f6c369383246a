export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  threshold: number;
  /** First open period; doubled after each failed probe, up to maxCooldownMs. */
  cooldownMs: number;
  maxCooldownMs: number;
  now?: () => number;
}

export const DEFAULT_BREAKER: CircuitBreakerOptions = {
  threshold: 3,
  cooldownMs: 10_000,
  maxCooldownMs: 5 * 60_000,
};

/**
 * Skips a dead upstream quickly instead of making every request wait for its timeouts. After
 * `threshold` failures in a row the circuit opens: nothing is sent until the cooldown is over.
 * Then one probe goes through (half-open); its success closes the circuit, its failure opens it
 * again for twice as long.
 */
export class CircuitBreaker {
  private failures = 0;
  private openedAt: number | undefined;
  private cooldown: number;
  /** When the current probe was let through; a probe nobody reports on expires after a cooldown. */
  private probeAt: number | undefined;
  private readonly now: () => number;

  constructor(private readonly options: CircuitBreakerOptions = DEFAULT_BREAKER) {
    this.cooldown = options.cooldownMs;
    this.now = options.now ?? Date.now;
  }

  get state(): CircuitState {
    if (this.openedAt === undefined) return 'closed';
    return this.now() >= this.openedAt + this.cooldown ? 'half-open' : 'open';
  }

  /** When the next attempt will be let through, while the circuit is open. */
  get retryAt(): number | undefined {
    return this.openedAt === undefined ? undefined : this.openedAt + this.cooldown;
  }

  /** Whether a request may go to the upstream now. */
  allow(): boolean {
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'open') return false;
    const now = this.now();
    if (this.probeAt !== undefined && now < this.probeAt + this.cooldown) return false;
    this.probeAt = now;
    return true;
  }

  success(): void {
    this.failures = 0;
    this.openedAt = undefined;
    this.probeAt = undefined;
    this.cooldown = this.options.cooldownMs;
  }

  failure(): void {
    this.failures++;
    if (this.openedAt !== undefined) {
      // A failed probe (or a request that started before the circuit opened).
      if (this.probeAt !== undefined) {
        this.cooldown = Math.min(this.options.maxCooldownMs, this.cooldown * 2);
        this.openedAt = this.now();
        this.probeAt = undefined;
      }
      return;
    }
    if (this.failures >= this.options.threshold) this.openedAt = this.now();
  }
}
