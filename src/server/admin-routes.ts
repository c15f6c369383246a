import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerToken, matchToken } from '../core/access-token.js';
import { HttpError, notFound, sendJson } from './http-error.js';
import type { SyncScheduler } from './sync-scheduler.js';

export interface AdminContext {
  /** SHA-256 hex of the admin token; undefined: none configured, so the endpoints do not exist. */
  tokenSha256: string | undefined;
  sync: SyncScheduler | undefined;
}

/**
 * `POST /admin/sync`: refresh every source's index now (open circuits included) and answer
 * with the sync's report. Needs `Authorization: Bearer <[server] admin_token>`.
 */
export async function handleAdminSync(
  ctx: AdminContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (ctx.tokenSha256 === undefined || !ctx.sync) throw notFound();
  if (!adminTokenMatches(req.headers.authorization, ctx.tokenSha256)) {
    throw new HttpError(401, 'admin token required', {
      'WWW-Authenticate': 'Bearer realm="moonbit-registry admin"',
    });
  }
  // The body is ignored; read it so the connection can be reused.
  req.resume();
  const report = await ctx.sync.trigger('admin', true);
  sendJson(res, 200, report);
}

/** Only a bearer token: read tokens (Basic or Bearer) are a different secret. */
function adminTokenMatches(header: string | undefined, sha256: string): boolean {
  const token = bearerToken(header);
  return token !== undefined && matchToken(token, [{ name: 'admin', sha256 }]) !== undefined;
}
