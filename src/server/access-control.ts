import type { IncomingMessage } from 'node:http';
import type { AccessConfig } from '../config/schema.js';
import { matchToken, presentedSecret } from '../core/access-token.js';
import { AddressList, normalizeAddress } from '../core/ip-address.js';

/**
 * Who may read this registry (`[server.access]`): anyone (`open`), clients from listed
 * addresses (`allowlist`), or clients presenting one of the tokens (`credentials`, optionally
 * from listed addresses only). Admin endpoints are guarded by their own token instead.
 */

export interface AccessDecision {
  /** The client's address, after trusted proxies' X-Forwarded-For. */
  client: string;
  /** False: 403, whatever credentials came along. */
  addressAllowed: boolean;
  /** False: 401 with a Basic challenge (git sends credentials only after one). */
  authenticated: boolean;
  /** The name of the token presented, for the access log (never the token). */
  user?: string;
}

export class AccessControl {
  private config!: AccessConfig;
  private allow!: AddressList;
  private trustedProxies!: AddressList;

  constructor(config: AccessConfig, trustedProxies: readonly string[]) {
    this.update(config, trustedProxies);
  }

  /** Takes new rules (serve re-reads registry.toml on SIGHUP): a revoked token stops working. */
  update(config: AccessConfig, trustedProxies: readonly string[]): void {
    this.allow = new AddressList(config.allow);
    this.trustedProxies = new AddressList(trustedProxies);
    this.config = config;
  }

  get mode(): AccessConfig['mode'] {
    return this.config.mode;
  }

  /** The tokens in force (read and publish tokens alike). */
  get tokens(): AccessConfig['tokens'] {
    return this.config.tokens;
  }

  check(req: IncomingMessage): AccessDecision {
    const client = this.clientAddress(req);
    const addressAllowed = this.config.mode === 'open' || this.allow.size === 0 || this.allow.has(client);
    if (this.config.mode !== 'credentials') return { client, addressAllowed, authenticated: true };
    const secret = presentedSecret(req.headers.authorization);
    const user = secret === undefined ? undefined : matchToken(secret, this.config.tokens);
    return { client, addressAllowed, authenticated: user !== undefined, ...(user ? { user } : {}) };
  }

  /**
   * The socket's peer, unless that peer is a trusted proxy: then the nearest address in
   * X-Forwarded-For that is not a trusted proxy (the client's own entries further left can be
   * forged, so they are never believed).
   */
  clientAddress(req: IncomingMessage): string {
    let address = normalizeAddress(req.socket.remoteAddress ?? '');
    if (this.trustedProxies.size === 0 || !this.trustedProxies.has(address)) return address;
    const header = req.headers['x-forwarded-for'];
    const hops = (Array.isArray(header) ? header.join(',') : (header ?? ''))
      .split(',')
      .map((hop) => hop.trim())
      .filter((hop) => hop !== '');
    while (hops.length > 0 && this.trustedProxies.has(address)) {
      address = normalizeAddress(hops.pop() as string);
    }
    return address;
  }
}
