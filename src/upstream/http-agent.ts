import { Agent, type Dispatcher, interceptors } from 'undici';
import type { UpstreamSource } from './upstream-source.js';

/**
 * One connection pool per mirror run, shared by every source: keep-alive connections, bounded
 * connect/header/body timeouts, and redirects followed (undici drops `Authorization` when a
 * redirect leaves the origin; UpstreamSource.archiveHeaders decides who gets it at all).
 */
export function createHttpAgent(options: {
  connections: number;
  timeoutMs: number;
  /** Defaults to timeoutMs. */
  connectTimeoutMs?: number;
}): Dispatcher {
  return new Agent({
    connections: options.connections,
    connect: { timeout: options.connectTimeoutMs ?? options.timeoutMs },
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    keepAliveTimeout: 10_000,
  }).compose(interceptors.redirect({ maxRedirections: 5 }));
}

/** One pool per source, so each gets its own connect and read timeouts. */
export interface SourceAgents {
  dispatcherFor(source: UpstreamSource): Dispatcher;
  /** Lets requests in flight finish; after `graceMs` they are aborted. */
  close(graceMs?: number): Promise<void>;
}

export function createSourceAgents(connections: number): SourceAgents {
  const agents = new Map<string, Dispatcher>();
  return {
    dispatcherFor(source) {
      let agent = agents.get(source.name);
      if (!agent) {
        agent = createHttpAgent({
          connections,
          timeoutMs: source.timeouts.readMs,
          connectTimeoutMs: source.timeouts.connectMs,
        });
        agents.set(source.name, agent);
      }
      return agent;
    },
    async close(graceMs = Number.POSITIVE_INFINITY) {
      const all = [...agents.values()];
      agents.clear();
      const closing = Promise.all(all.map((agent) => agent.close()));
      if (graceMs === Number.POSITIVE_INFINITY) {
        await closing;
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const late = await Promise.race([
        closing.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), graceMs);
        }),
      ]);
      clearTimeout(timer);
      // A trickling upstream never trips the read timeout: do not let it hold a shutdown.
      if (late) await Promise.all(all.map((agent) => agent.destroy()));
    },
  };
}

export const USER_AGENT = 'moonbit-registry/0.1 (mirror)';
