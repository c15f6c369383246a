/**
 * Replicas benchmark: warm archive throughput of three `serve --proxy` replicas against one,
 * measured in one run on the same bucket, Redis and archives.
 *
 * Setup. A FakeUpstream (this process) serves the fixture (the real mooncakes.io index, small
 * synthetic archives); s3rver runs as a child process (it would otherwise share this process
 * with the load generator), Debian's redis-server as another. Three registry folders share
 * `[storage] type = "s3"` and `[coordination] redis_url`. Replica 0 starts and BENCH_ARCHIVES
 * (64) archives are fetched through it once, so they are in the bucket ("warm").
 *
 * Arms, BENCH_SECONDS (15) each, BENCH_CONNECTIONS (48) keep-alive connections in all:
 * - one replica: autocannon on replica 0, each connection cycling through its share of the
 *   archives;
 * - three replicas: replicas 1 and 2 started too, and the connections split evenly over the
 *   three (three autocannon instances at once, as a load balancer would spread them).
 * - for scale, first: the same load on one process whose archives are files in data/.
 * Reported: requests and MB per second, latency p50/p99, errors and non-2xx answers; the ratio
 * of three to one is the result. Every archive request reads the bucket (nothing is cached on
 * the replicas' disks), so on one machine the bucket server and the load generator share the
 * cores with the replicas: the ratio says what the replicas add on this machine, not on a
 * fleet of hosts. The machine's core count is printed with it.
 *
 * Env: BENCH_SECONDS (15), BENCH_CONNECTIONS (48), BENCH_ARCHIVES (64).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFile, cp } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { pristineRegistry, type RunningServer, runCliOk, startServe, tempDir } from '../test/support/cli.js';
import { FakeUpstream } from '../test/support/fake-upstream.js';
import { buildFixture } from '../test/support/fixture.js';
import { download } from '../test/support/moon-client.js';
import { startRedisServer } from '../test/support/redis-server.js';
import { S3_TEST_ENV, storageToml } from '../test/support/s3-server.js';
import { BenchFailure, envInteger, log, printTable } from './bench-support.js';

const SECONDS = envInteger('BENCH_SECONDS', 15, 1);
const CONNECTIONS = envInteger('BENCH_CONNECTIONS', 48, 3);
const ARCHIVES = envInteger('BENCH_ARCHIVES', 64, 1);
const SOURCE = 'fakecakes';

interface Arm {
  name: string;
  rps: number;
  mbps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

/** s3rver in a child process; resolves with its endpoint once it listens. */
function startBucketProcess(): Promise<{ endpoint: string; child: ChildProcess }> {
  const script = [
    "const { startS3Server } = await import('./test/support/s3-server.ts');",
    'const s3 = await startS3Server();',
    'console.log(`listening ${s3.endpoint}`);',
    "process.on('SIGTERM', () => s3.stop().then(() => process.exit(0)));",
  ].join('\n');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: path.resolve(import.meta.dirname, '..'),
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const match = /listening (\S+)/.exec(out);
      if (match?.[1]) resolve({ endpoint: match[1], child });
    });
    child.on('exit', (code) => reject(new BenchFailure(`s3rver exited with ${code}`)));
  });
}

async function load(
  name: string,
  targets: Array<{ url: string; connections: number }>,
  paths: string[],
): Promise<Arm> {
  const runs = await Promise.all(
    targets.map(({ url, connections }) => {
      let client = 0;
      return autocannon({
        url,
        connections,
        duration: SECONDS,
        timeout: 10,
        setupClient: (c) => {
          const index = client++;
          // Each connection starts at its own place in the list, so all archives stay in use.
          const rotated = [...paths.slice(index % paths.length), ...paths.slice(0, index % paths.length)];
          c.setRequests(rotated.map((p) => ({ method: 'GET', path: p })));
        },
      });
    }),
  );
  const sum = (pick: (r: autocannon.Result) => number) => runs.reduce((n, r) => n + pick(r), 0);
  return {
    name,
    rps: sum((r) => r.requests.mean),
    mbps: sum((r) => r.throughput.mean) / 1e6,
    p50: Math.max(...runs.map((r) => r.latency.p50)),
    p99: Math.max(...runs.map((r) => r.latency.p99)),
    errors: sum((r) => r.errors + r.timeouts),
    non2xx: sum((r) => r.non2xx),
  };
}

async function main(): Promise<void> {
  const fixture = await buildFixture();
  const upstream = await FakeUpstream.start({ fixture });
  const scratch = await tempDir('mr-bench-replicas-');
  const redis = await startRedisServer();
  const bucket = await startBucketProcess();
  const replicas: RunningServer[] = [];
  try {
    const template = await pristineRegistry(SOURCE, upstream.url, path.join(scratch.path, 'template'));
    await runCliOk(['config', 'server.log_level', 'warn'], { cwd: template });
    const local = path.join(scratch.path, 'local');
    await cp(template, local, { recursive: true });
    await appendFile(
      path.join(template, 'registry.toml'),
      storageToml({ endpoint: bucket.endpoint, bucket: 'registry-test' }, { redisUrl: redis.url }),
    );
    const roots = [0, 1, 2].map((i) => path.join(scratch.path, `replica-${i}`));
    for (const root of roots) await cp(template, root, { recursive: true });
    const start = async (i: number) => {
      const server = await startServe(roots[i] as string, ['--proxy'], {
        timeoutMs: 60_000,
        env: S3_TEST_ENV,
      });
      replicas.push(server);
      return server;
    };
    const first = await start(0);
    const chosen = [...fixture.modules].flatMap(([module, versions]) =>
      [...versions].map(([version, info]) => ({ module, version, checksum: info.checksum })),
    );
    const archives = chosen.slice(0, ARCHIVES);
    log(`warming ${archives.length} archives into the bucket through replica 0`);
    for (const a of archives)
      await download(first.url, a.module, a.version, a.checksum, { timeoutMs: 60_000 });
    const paths = archives.map((a) => `/user/${a.module}/${a.version}.zip`);

    // For scale: the same load on one process whose archives are files in data/ (no bucket, no Redis).
    const onDisk = await startServe(local, ['--proxy'], { timeoutMs: 60_000 });
    let disk: Arm;
    try {
      for (const a of archives)
        await download(onDisk.url, a.module, a.version, a.checksum, { timeoutMs: 60_000 });
      log(`one process on disk: ${CONNECTIONS} connections for ${SECONDS} s`);
      disk = await load('1 process, data/ on disk', [{ url: onDisk.url, connections: CONNECTIONS }], paths);
    } finally {
      await onDisk.stop();
    }

    log(`one replica: ${CONNECTIONS} connections for ${SECONDS} s`);
    const one = await load('1 replica', [{ url: first.url, connections: CONNECTIONS }], paths);
    await start(1);
    await start(2);
    const share = Math.floor(CONNECTIONS / 3);
    log(`three replicas: ${share * 3} connections for ${SECONDS} s`);
    const three = await load(
      '3 replicas',
      replicas.map((r) => ({ url: r.url, connections: share })),
      paths,
    );
    printTable([
      ['arm', 'req/s', 'MB/s', 'p50 ms', 'p99 ms', 'errors', 'non-2xx'],
      ...[disk, one, three].map((a) => [
        a.name,
        a.rps.toFixed(0),
        a.mbps.toFixed(1),
        String(a.p50),
        String(a.p99),
        String(a.errors),
        String(a.non2xx),
      ]),
    ]);
    console.log(
      `three replicas / one: ${(three.rps / one.rps).toFixed(2)}x requests per second (${availableParallelism()} cores shared by the replicas, s3rver, Redis and the load generator)`,
    );
    console.log(`one replica on the bucket / one process on disk: ${(one.rps / disk.rps).toFixed(2)}x`);
    console.log(
      `\nRESULT disk_rps=${disk.rps.toFixed(0)} one_rps=${one.rps.toFixed(0)} three_rps=${three.rps.toFixed(0)} three_to_one=${(three.rps / one.rps).toFixed(2)}`,
    );
    if ([disk, one, three].some((a) => a.errors + a.non2xx > 0))
      console.log('target missed: errors under load');
  } finally {
    await Promise.allSettled(replicas.map((r) => r.stop()));
    bucket.child.kill('SIGTERM');
    await Promise.allSettled([redis.stop(), upstream.close(), fixture.cleanup(), scratch.remove()]);
  }
}

await main();
