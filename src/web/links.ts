/** URLs of the web UI's own pages, built from decoded names (never from raw request paths). */

export function moduleHref(module: string, version?: string): string {
  const path = `/user/${module.split('/').map(encodeURIComponent).join('/')}`;
  return version === undefined ? path : `${path}?version=${encodeURIComponent(version)}`;
}

/** `/` with the given search parameters; empty ones are left out. */
export function listHref(params: Record<string, string | number | undefined>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  return text === '' ? '/' : `/?${text}`;
}

export function ownerOf(module: string): string {
  return module.slice(0, module.indexOf('/'));
}
