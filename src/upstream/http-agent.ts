import { Agent, type Dispatcher, interceptors } from 'undici';

/**
 * One connection pool per mirror run, shared by every source: keep-alive connections, bounded
 * connect/header/body timeouts, and redirects followed (undici drops `Authorization` when a
 * redirect leaves the origin; UpstreamSource.archiveHeaders decides who gets it at all).
 */
export function createHttpAgent(options: { connections: number; timeoutMs: number }): Dispatcher {
  return new Agent({
    connections: options.connections,
    connect: { timeout: options.timeoutMs },
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    keepAliveTimeout: 10_000,
  }).compose(interceptors.redirect({ maxRedirections: 5 }));
}

export const USER_AGENT = 'moonbit-registry/0.1 (mirror)';
