import type { WebContext } from '../web/web-context.js';
import type { ServerContext } from './server-context.js';

const contexts = new WeakMap<ServerContext, WebContext>();

/** The web UI's view of this server, made once per server so its per-commit caches last. */
export function webContextFor(ctx: ServerContext): WebContext {
  let web = contexts.get(ctx);
  if (!web) {
    const { info } = ctx;
    web = {
      registryName: info.config.registry.name,
      get publicUrl() {
        return info.publicUrl;
      },
      mode: info.mode,
      snapshot: () => info.index.snapshot(),
      sourceOf: (module, version, checksum) => info.sourceOf(module, version, checksum),
      isStored: (module, version, checksum) => info.isStored(module, version, checksum),
      status: () => info.status(),
    };
    contexts.set(ctx, web);
  }
  return web;
}
