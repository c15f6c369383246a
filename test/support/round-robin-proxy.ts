import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A load balancer for tests: each request goes to the next replica in turn, so a client's
 * requests (a clone, then a pull, then archive downloads) bounce between replicas. A replica
 * that refuses the connection is skipped for that request, as a balancer's health check would.
 */
export interface RoundRobinProxy {
  url: string;
  /** Requests forwarded to each target so far, by target URL. */
  readonly counts: Map<string, number>;
  close(): Promise<void>;
}

export async function startRoundRobinProxy(targets: () => string[]): Promise<RoundRobinProxy> {
  let next = 0;
  const counts = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const all = targets();
      const attempt = (tries: number): void => {
        const target = all[next++ % all.length] as string;
        const upstream = http.request(
          new URL(req.url ?? '/', target),
          { method: req.method, headers: { ...req.headers, host: new URL(target).host } },
          (answer) => {
            counts.set(target, (counts.get(target) ?? 0) + 1);
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
            answer.on('error', () => res.destroy());
          },
        );
        upstream.on('error', (error: NodeJS.ErrnoException) => {
          if (error.code === 'ECONNREFUSED' && tries + 1 < all.length) return attempt(tries + 1);
          if (!res.headersSent) res.writeHead(502).end(String(error));
          else res.destroy();
        });
        upstream.end(body);
      };
      attempt(0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
