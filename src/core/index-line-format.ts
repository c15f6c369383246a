/**
 * Index lines as mooncakes.io writes them (Python's json.dumps defaults): `", "` and `": "`
 * separators and non-ASCII escaped as \uXXXX. Lines we write look like the real index's, so a
 * downstream tool that diffs or greps them sees nothing unusual.
 */
export function formatIndexLine(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(formatIndexLine).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{${entries.map(([k, v]) => `${asciiJson(k)}: ${formatIndexLine(v)}`).join(', ')}}`;
  }
  return asciiJson(value);
}

function asciiJson(value: unknown): string {
  return (JSON.stringify(value) ?? 'null').replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Python's datetime.isoformat() shape, as in the real `created_at`. */
export function indexTimestamp(date = new Date()): string {
  return date.toISOString().replace(/Z$/, '000+00:00');
}
