import { trimTrailingSlash } from '../core/archive-url.js';
import type { RegistryConfig } from './schema.js';

/**
 * The URL `moon` on this machine should use for this registry, from registry.toml alone:
 * `[server] base_url` when set, else the server's own address (https with a TLS certificate;
 * a server listening on every address is reached on loopback).
 */
export function registryUrl(server: RegistryConfig['server']): string {
  if (server.base_url) return trimTrailingSlash(server.base_url);
  const host = server.host === '0.0.0.0' ? '127.0.0.1' : server.host === '::' ? '::1' : server.host;
  const scheme = server.tls_cert ? 'https' : 'http';
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${server.port}`;
}
