import { CircuitBreaker, type CircuitBreakerOptions, type CircuitState } from './circuit-breaker.js';

export interface SourceHealthReport {
  name: string;
  /** ok: the last contact worked; failing: it did not; unknown: no contact yet. */
  state: 'ok' | 'failing' | 'unknown';
  circuit: CircuitState;
  failing_since: string | null;
  last_error: string | null;
  /** Next time a request is let through while the circuit is open. */
  retry_at: string | null;
  last_success: string | null;
  last_sync: string | null;
  index_commit: string | null;
}

/**
 * What the server knows about one upstream: every index fetch and archive request reports here,
 * and the circuit breaker decides whether the next one is sent at all.
 */
export class SourceHealth {
  readonly breaker: CircuitBreaker;
  private lastSuccess: number | undefined;
  private failingSince: number | undefined;
  private lastError: string | undefined;
  private lastSync: number | undefined;
  private indexCommit: string | undefined;

  constructor(
    readonly name: string,
    breaker?: CircuitBreakerOptions,
  ) {
    this.breaker = new CircuitBreaker(breaker);
  }

  succeeded(): void {
    this.breaker.success();
    this.lastSuccess = Date.now();
    this.failingSince = undefined;
    this.lastError = undefined;
  }

  /** The upstream answered, if not with what we wanted (a 404): it is up, whatever failed before. */
  answered(): void {
    this.breaker.success();
  }

  /**
   * A failure of the upstream itself (unreachable, timeout, 5xx), which counts for the breaker.
   * `reason` is shown by /health to anyone: a few words, no URLs or server output.
   */
  failed(reason: string): void {
    this.breaker.failure();
    this.failingSince ??= Date.now();
    this.lastError = reason;
  }

  synced(commit: string): void {
    this.succeeded();
    this.lastSync = Date.now();
    this.indexCommit = commit;
  }

  /** The commit of this source's index in use when it was never synced by this server. */
  knownCommit(commit: string | undefined): void {
    this.indexCommit ??= commit;
  }

  report(): SourceHealthReport {
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    const circuit = this.breaker.state;
    return {
      name: this.name,
      state: this.failingSince !== undefined ? 'failing' : this.lastSuccess !== undefined ? 'ok' : 'unknown',
      circuit,
      failing_since: iso(this.failingSince),
      last_error: this.lastError ?? null,
      retry_at: circuit === 'open' ? iso(this.breaker.retryAt) : null,
      last_success: iso(this.lastSuccess),
      last_sync: iso(this.lastSync),
      index_commit: this.indexCommit ?? null,
    };
  }
}
