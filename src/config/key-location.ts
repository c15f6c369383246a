/** Where a key of registry.toml is written, for error messages and notices. */

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path
    .map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`))
    .join('');
}

/**
 * Best-effort line of a key such as ['sources', 1, 'priority'] or of a table such as
 * ['servr']: follows table headers (counting `[[sources]]` items) and key lines; when the key
 * itself is not written (a default, an inline table) it gives the line of its closest parent.
 */
export function locateKey(text: string, path: ReadonlyArray<PropertyKey>): number | undefined {
  const names = path.filter((p) => typeof p !== 'number').map(String);
  // An item of a top-level array of tables ([[sources]]); a later index is inside a value.
  const item = typeof path[1] === 'number' ? path[1] : undefined;
  const lines = text.split('\n');
  let table: string[] = [];
  let arrayItem = -1;
  let best: { line: number; depth: number } | undefined;
  const consider = (keyPath: string[], line: number) => {
    const inItem = item === undefined || keyPath[0] !== names[0] || arrayItem === item;
    if (!inItem || keyPath.length === 0 || !keyPath.every((part, k) => part === names[k])) return;
    if (!best || keyPath.length > best.depth) best = { line, depth: keyPath.length };
  };
  for (const [i, text] of lines.entries()) {
    const header = /^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/.exec(text);
    if (header) {
      table = (header[2] as string).split('.').map((part) => part.trim().replace(/^"(.*)"$/, '$1'));
      if (header[1] === '[[' && table.join('.') === names[0]) arrayItem++;
      consider(table, i + 1);
      continue;
    }
    const key = /^\s*"?([A-Za-z0-9_-]+)"?\s*=/.exec(text)?.[1];
    if (key) consider([...table, key], i + 1);
  }
  return best?.line;
}
