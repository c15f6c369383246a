/**
 * Text from upstream (index paths, `name` and `version` fields) reaches terminals and logs in
 * warnings. Quoted with JSON escapes, so a newline cannot forge a log line and an escape
 * sequence cannot drive the operator's terminal, and shortened, so a megabyte-long field gives a
 * one-line warning.
 */
const MAX_QUOTED = 100;

/** `value` as a short, printable, quoted string (non-strings as their type or `String(value)`). */
export function quoteForLog(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object' && value !== null) return 'an object';
  if (typeof value !== 'string') return String(value);
  const cut = value.length > MAX_QUOTED;
  // JSON.stringify escapes C0 controls, quotes and backslashes; DEL, C1 controls (a lone 0x9b
  // starts an escape sequence in some terminals) and format characters (bidi overrides) too.
  const quoted = JSON.stringify(cut ? value.slice(0, MAX_QUOTED) : value).replace(
    /[\u007f-\u009f\p{Cf}]/gu,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`,
  );
  return cut ? `${quoted.slice(0, -1)}..." (${value.length} characters)` : quoted;
}
