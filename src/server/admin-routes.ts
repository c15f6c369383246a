import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, notFound, sendJson } from './http-error.js';
import type { SyncScheduler } from './sync-scheduler.js';

export interface AdminContext {
  /** Undefined: no token configured, so the admin endpoints do not exist. */
  token: string | undefined;
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
  if (ctx.token === undefined || !ctx.sync) throw notFound();
  if (!tokenMatches(req.headers.authorization, ctx.token)) {
    throw new HttpError(401, 'admin token required', {
      'WWW-Authenticate': 'Bearer realm="moonbit-registry admin"',
    });
  }
  // The body is ignored; read it so the connection can be reused.
  req.resume();
  const report = await ctx.sync.trigger('admin', true);
  sendJson(res, 200, report);
}

/** Compares hashes of both values in constant time, so timing tells nothing about the token. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
  const given = createHash('sha256')
    .update(match?.[1]?.trim() ?? '')
    .digest();
  const expected = createHash('sha256').update(token.trim()).digest();
  return match !== null && timingSafeEqual(given, expected);
}
