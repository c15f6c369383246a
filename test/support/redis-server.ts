/**
 * A throwaway redis-server on 127.0.0.1 for tests of the coordination service: no persistence,
 * logs kept in memory (shown if it fails to start), stopped with SIGTERM. Tests start their own
 * servers, so no system Redis service is needed; `.ci/run` installs the redis-server binary.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

export interface RunningRedisServer {
  /** redis://127.0.0.1:<port>, with the password if one was asked for. */
  url: string;
  port: number;
  /** SIGTERM, then waits for the exit; safe to call twice. */
  stop(): Promise<void>;
  /** stop(), then a fresh server (empty: Redis forgets everything) on the same port. */
  restart(): Promise<void>;
  /** SIGSTOP: the server keeps its connections but answers nothing (a hung server). */
  pause(): void;
  resume(): void;
}

const START_TIMEOUT_MS = 10_000;

/** Every server still running, killed if the test process exits without stopping them. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function startRedisServer(
  port?: number,
  options: { password?: string } = {},
): Promise<RunningRedisServer> {
  const binary = findRedisServer();
  const chosenPort = port ?? (await freePort());
  const args = ['--port', String(chosenPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  args.push('--daemonize', 'no', '--logfile', '');
  if (options.password) args.push('--requirepass', options.password);
  let child = await launch(binary, args, chosenPort);
  let paused = false;
  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : '';
  const server: RunningRedisServer = {
    url: `redis://${auth}127.0.0.1:${chosenPort}`,
    port: chosenPort,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      if (paused) server.resume(); // a stopped process would not handle SIGTERM
      child.kill('SIGTERM');
      await exited;
    },
    async restart() {
      await server.stop();
      child = await launch(binary, args, chosenPort);
    },
    pause() {
      child.kill('SIGSTOP');
      paused = true;
    },
    resume() {
      child.kill('SIGCONT');
      paused = false;
    },
  };
  return server;
}

function findRedisServer(): string {
  const candidates = [
    '/usr/bin/redis-server',
    ...(process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'redis-server')),
  ];
  const found = candidates.find((path) => path !== 'redis-server' && existsSync(path));
  if (!found) {
    throw new Error(
      'redis-server is not installed; .ci/run installs it (apt-get install redis-server), or install it yourself',
    );
  }
  return found;
}

/** Spawns the server and waits until it answers on the port; on failure, says what it printed. */
async function launch(binary: string, args: string[], port: number): Promise<ChildProcess> {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let exited = false;
  child.once('exit', () => {
    exited = true;
    running.delete(child);
  });
  const giveUpAt = Date.now() + START_TIMEOUT_MS;
  while (!(await answers(port))) {
    if (exited || Date.now() > giveUpAt) {
      child.kill('SIGKILL');
      throw new Error(`redis-server on port ${port} did not start:\n${output}`);
    }
    await delay(50);
  }
  return child;
}

/** Whether something answers a RESP PING on the port (+PONG, or -NOAUTH with a password). */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(/^(\+PONG|-NOAUTH)/.test(data.toString())));
  });
}

/** A port nobody listens on right now (the kernel picks it; we give it back at once). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
