/**
 * What several `serve` replicas share through Redis: a lease lock (one writer at a time, one
 * upstream download per missing archive), pub/sub notices (a new index commit), and a small
 * key/value (the authoritative index head).
 *
 * Redis being down must never take the registry down with it: connecting does not throw, every
 * command fails fast with RegistryError 'UNAVAILABLE' (HTTP 503) instead of queueing or
 * hanging, and ioredis reconnects by itself in the background.
 */
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { describeError, RegistryError } from '../core/errors.js';
import { type LeaseOptions, type LeaseStore, withLease } from './lease.js';

export interface Coordination {
  /** Who this process is, for lock owners and messages: `${hostname}:${pid}`. */
  readonly self: string;
  /**
   * Runs `work` holding the named lease across every replica; waits up to `waitMs` for it, else
   * throws 'LOCKED' naming the holder. While `work` runs the lease is renewed every leaseMs/3;
   * if that fails, `signal` aborts (reason: RegistryError 'UNAVAILABLE' or 'LOCKED') and the
   * work must stop before publishing. Released when `work` settles.
   */
  withLock<T>(name: string, options: LeaseOptions, work: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /** Fire-and-forget notice to every replica (including this one). */
  publish(channel: string, message: string): Promise<void>;
  /**
   * Calls onMessage for each message; onResync after a reconnection (messages may have been
   * missed: re-read the state). Does not fail while Redis is down: the subscription starts
   * when Redis is back, with an onResync. Returns an unsubscribe function.
   */
  subscribe(
    channel: string,
    onMessage: (message: string) => void,
    onResync?: () => void,
  ): Promise<() => Promise<void>>;
  get(key: string): Promise<string | undefined>;
  /** Sets key to value only if it currently equals `expected` (undefined = absent), atomically. */
  compareAndSet(key: string, expected: string | undefined, value: string): Promise<boolean>;
  /** Sets key to value for `ms` milliseconds (a short-lived fact every replica may read). */
  setExpiring(key: string, value: string, ms: number): Promise<void>;
  /** True while connected (for /status and health). */
  readonly connected: boolean;
  close(): Promise<void>;
}

// Lua runs atomically in Redis: the token checks and the compare-and-set cannot interleave with
// another replica. `SET ... NX` answers nil (false in Lua) when the key exists.
const SCRIPTS = {
  leaseTake: `if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return ARGV[1] end
return redis.call('GET', KEYS[1])`,
  leaseExtend: `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`,
  leaseRelease: `if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0`,
  compareAndSet: `local current = redis.call('GET', KEYS[1])
if (ARGV[1] == 'absent' and current == false) or (ARGV[1] == 'equals' and current == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[3])
  return 1
end
return 0`,
} as const;

/** The commands defineCommand adds (ioredis cannot type them itself). */
interface ScriptCommands {
  leaseTake(key: string, token: string, leaseMs: number): Promise<string>;
  leaseExtend(key: string, token: string, leaseMs: number): Promise<number>;
  leaseRelease(key: string, token: string, channel: string, name: string): Promise<number>;
  compareAndSet(key: string, mode: 'absent' | 'equals', expected: string, value: string): Promise<number>;
}

/** Where lease releases are announced, so waiters need not wait for their next poll. */
const RELEASE_CHANNEL = 'lease-released';

interface Subscription {
  onMessage: (message: string) => void;
  onResync: (() => void) | undefined;
}

export async function connectCoordination(
  url: string,
  options: { keyPrefix?: string; timeoutMs?: number } = {},
): Promise<Coordination> {
  const prefix = options.keyPrefix ?? 'moonbit-registry:';
  const timeoutMs = options.timeoutMs ?? 2000;
  const where = redactedUrl(url);
  const self = `${hostname()}:${process.pid}`;

  const client = new Redis(url, {
    // No offline queue and one retry: while Redis is down a command fails at once instead of
    // waiting for a reconnection; commandTimeout bounds a server that accepts but never answers.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // A lease command resent after a reconnection could take a lease for a caller that gave up.
    autoResendUnfulfilledCommands: false,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    retryStrategy: (attempt) => Math.min(attempt * 200, 1000), // keep trying forever, calmly
    lazyConnect: true,
    // close() ends the socket and keeps a timer this long in case it never closes; on a socket
    // that is already gone (Redis down) it always runs, holding a CLI's exit back for nothing.
    disconnectTimeout: 200,
    connectionName: self.replace(/\s/g, '_'),
  });
  // Subscribing takes a connection for itself; we resubscribe ourselves on 'ready' so we know
  // when to tell subscribers that they may have missed messages.
  const subscriber = client.duplicate({ autoResubscribe: false });
  // Why the client is not connected, for the messages of the commands that fail meanwhile.
  let lastError: unknown;
  client.on('error', (error: unknown) => {
    lastError = error;
  });
  client.on('ready', () => {
    lastError = undefined;
  });
  // Without a listener, ioredis's error events would be unhandled and crash the process.
  subscriber.on('error', () => undefined);
  for (const connection of [client, subscriber]) connection.connect().catch(() => undefined); // it retries itself
  const commands = client as Redis & ScriptCommands;
  for (const [name, lua] of Object.entries(SCRIPTS)) client.defineCommand(name, { numberOfKeys: 1, lua });

  const unavailable = (error: unknown): RegistryError =>
    new RegistryError(
      'UNAVAILABLE',
      `coordination service ${where} does not answer: ${describeError(error)}`,
      {
        cause: error,
        hint: 'start Redis or fix [coordination] redis_url; the registry reconnects by itself',
      },
    );
  const run = async <T>(command: () => Promise<T>): Promise<T> => {
    if (client.status !== 'ready') throw unavailable(lastError ?? `not connected (${client.status})`);
    try {
      return await command();
    } catch (error) {
      throw unavailable(error);
    }
  };

  // Subscriptions by full channel name. The lease waiters' channel is one of them.
  const subscriptions = new Map<string, Set<Subscription>>();
  const releaseWaiters = new Map<string, Set<() => void>>();
  const wakeWaiters = (name: string): void => {
    for (const wake of releaseWaiters.get(name) ?? []) wake();
  };
  subscriptions.set(prefix + RELEASE_CHANNEL, new Set([{ onMessage: wakeWaiters, onResync: undefined }]));
  subscriber.on('message', (channel: string, message: string) => {
    for (const subscription of subscriptions.get(channel) ?? [])
      deliver(() => subscription.onMessage(message));
  });
  subscriber.on('ready', () => {
    // Every 'ready' is a new connection that subscribes to nothing yet. Those subscribed before
    // it (the first 'ready' comes before any caller's) may have missed messages meanwhile.
    const before = [...subscriptions.values()].flatMap((set) => [...set]);
    subscriber.subscribe(...subscriptions.keys()).then(
      () => {
        for (const subscription of before) if (subscription.onResync) deliver(subscription.onResync);
      },
      () => undefined, // the connection broke again; the next 'ready' retries
    );
  });

  const leases: LeaseStore = {
    take: (name, token, leaseMs) => run(() => commands.leaseTake(`${prefix}lease:${name}`, token, leaseMs)),
    extend: async (name, token, leaseMs) =>
      (await run(() => commands.leaseExtend(`${prefix}lease:${name}`, token, leaseMs))) === 1,
    release: async (name, token) => {
      await run(() => commands.leaseRelease(`${prefix}lease:${name}`, token, prefix + RELEASE_CHANNEL, name));
    },
    waitForRelease: (name, ms) =>
      new Promise<void>((resolve) => {
        const waiters = releaseWaiters.get(name) ?? new Set();
        releaseWaiters.set(name, waiters);
        const wake = (): void => {
          clearTimeout(timer);
          waiters.delete(wake);
          if (waiters.size === 0 && releaseWaiters.get(name) === waiters) releaseWaiters.delete(name);
          resolve();
        };
        const timer = setTimeout(wake, ms);
        waiters.add(wake);
      }),
  };

  // Wait a little for both connections, but start without them: stored content can be served
  // while Redis is down, and commands answer 'UNAVAILABLE' until it is back.
  await Promise.all([client, subscriber].map((connection) => untilReady(connection, timeoutMs)));

  return {
    self,
    withLock: (name, lockOptions, work) => withLease(leases, self, name, lockOptions, work),
    publish: async (channel, message) => {
      await run(() => client.publish(prefix + channel, message));
    },
    subscribe: async (channel, onMessage, onResync) => {
      const full = prefix + channel;
      const subscription: Subscription = { onMessage, onResync };
      const set = subscriptions.get(full) ?? new Set();
      subscriptions.set(full, set);
      set.add(subscription);
      // Not ready: the next 'ready' subscribes (and calls onResync). A failure here means the
      // connection broke, which also ends in a 'ready'.
      if (subscriber.status === 'ready') await subscriber.subscribe(full).catch(() => undefined);
      return async () => {
        set.delete(subscription);
        if (set.size > 0 || subscriptions.get(full) !== set) return;
        subscriptions.delete(full);
        if (subscriber.status === 'ready') await subscriber.unsubscribe(full).catch(() => undefined);
      };
    },
    get: async (key) => (await run(() => client.get(prefix + key))) ?? undefined,
    compareAndSet: async (key, expected, value) =>
      (await run(() =>
        commands.compareAndSet(
          prefix + key,
          expected === undefined ? 'absent' : 'equals',
          expected ?? '',
          value,
        ),
      )) === 1,
    setExpiring: async (key, value, ms) => {
      await run(() => client.set(prefix + key, value, 'PX', Math.max(1, Math.round(ms))));
    },
    get connected() {
      return client.status === 'ready';
    },
    close: async () => {
      const ended = [client, subscriber].map((connection) => untilEnded(connection, timeoutMs));
      client.disconnect();
      subscriber.disconnect();
      await Promise.all(ended);
    },
  };
}

/** `redis://host:port`: never the user name or password of the URL, which go into messages. */
function redactedUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RegistryError('CONFIG', 'the coordination URL is not a valid redis:// URL');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new RegistryError('CONFIG', `the coordination URL must start with redis:// or rediss://`);
  }
  return `${parsed.protocol}//${parsed.hostname}:${parsed.port || '6379'}`;
}

/** A subscriber's throw must not break delivery to the others, nor ioredis's reply parsing. */
function deliver(call: () => void): void {
  try {
    call();
  } catch (error) {
    process.emitWarning(`a coordination subscriber failed: ${describeError(error)}`);
  }
}

function untilReady(connection: Redis, timeoutMs: number): Promise<void> {
  return untilEvent(connection, 'ready', connection.status === 'ready', timeoutMs);
}

function untilEnded(connection: Redis, timeoutMs: number): Promise<void> {
  // Between reconnection attempts there is no socket whose closing would emit 'end'.
  const closed = connection.status === 'end' || connection.status === 'reconnecting';
  return untilEvent(connection, 'end', closed, timeoutMs);
}

/** Resolves on `event`, at once if `already`, or after timeoutMs anyway. */
function untilEvent(connection: Redis, event: string, already: boolean, timeoutMs: number): Promise<void> {
  if (already) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      connection.off(event, done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    connection.once(event, done);
  });
}
