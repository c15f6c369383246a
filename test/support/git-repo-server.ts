/**
 * Serves the bare repositories in one folder over smart HTTP with git's own `http-backend`
 * (read only), optionally behind basic auth: what a git source fetches in the tests.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeCgiResponse } from './fake-upstream.js';
import { isolatedGitEnv } from './git.js';

export interface GitRepoServer {
  url: string;
  /** Requests that carried the right credentials, or any when no credentials are asked. */
  requests: number;
  close(): Promise<void>;
}

export async function serveGitRepos(
  root: string,
  auth?: { username: string; password: string },
): Promise<GitRepoServer> {
  const state = { requests: 0 };
  const expected = auth
    ? `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`
    : undefined;
  const server = http.createServer((req, res) => {
    if (expected && req.headers.authorization !== expected) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"' });
      res.end('credentials needed\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (
      url.pathname.endsWith('/git-receive-pack') ||
      url.searchParams.get('service') === 'git-receive-pack'
    ) {
      res.writeHead(403);
      res.end('read only\n');
      return;
    }
    state.requests++;
    const child = spawn('git', ['http-backend'], {
      env: isolatedGitEnv({
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: url.pathname,
        REQUEST_METHOD: req.method ?? 'GET',
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        ...(req.headers['content-length'] ? { CONTENT_LENGTH: req.headers['content-length'] } : {}),
        ...(req.headers['content-encoding']
          ? { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] }
          : {}),
        ...(typeof req.headers['git-protocol'] === 'string'
          ? { GIT_PROTOCOL: req.headers['git-protocol'] }
          : {}),
        REMOTE_ADDR: '127.0.0.1',
        SERVER_PROTOCOL: 'HTTP/1.1',
      }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4000);
    });
    child.stdin.on('error', () => {});
    req.pipe(child.stdin);
    res.on('close', () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    pipeCgiResponse(child, res, () => stderr);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return state.requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
