/**
 * JSON that every parser reads the same way. JavaScript's parser is lenient where serde_json
 * (what `moon` uses) is not: duplicate keys, lone surrogate escapes, deep nesting. Text a
 * client must read is checked here first.
 */
import { quoteForLog } from './log-text.js';

/**
 * Duplicate keys (parsers differ on which one wins) or nesting deeper than `maxDepth`, found in
 * JSON text that already parsed.
 */
export function jsonShapeProblem(text: string, maxDepth: number): string | undefined {
  const stack: Array<{ keys: Set<string> } | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      const literal = text.slice(i, end + 1);
      const top = stack[stack.length - 1];
      if (expectKey && top) {
        const key = JSON.parse(literal) as string;
        if (top.keys.has(key)) return `has the key ${quoteForLog(key)} twice`;
        top.keys.add(key);
        expectKey = false;
      }
      i = end;
    } else if (c === '{' || c === '[') {
      stack.push(c === '{' ? { keys: new Set() } : null);
      if (stack.length > maxDepth) return `nests deeper than ${maxDepth} levels`;
      expectKey = c === '{';
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      expectKey = stack[stack.length - 1] !== null && stack.length > 0;
    }
  }
  return undefined;
}

/**
 * Whether JSON text nests arrays and objects deeper than `maxDepth`, by one scan of its
 * characters (strings skipped), before anything is parsed: JavaScript's parser builds a
 * million nested arrays where serde_json stops at 128.
 */
export function nestsDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      i = closingQuote(text, i);
      if (i < 0) return false; // an unterminated string: not JSON, the parser says so
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

/** Index of the quote closing the string opened at `open` (one not escaped), or -1. */
function closingQuote(text: string, open: number): number {
  let at = open;
  for (;;) {
    at = text.indexOf('"', at + 1);
    if (at < 0) return -1;
    let backslashes = 0;
    while (text.charCodeAt(at - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return at;
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Any string or key holding half a surrogate pair (a `\ud800` escape parses into one). */
export function hasLoneSurrogate(value: unknown): boolean {
  if (typeof value === 'string') return LONE_SURROGATE.test(value);
  if (Array.isArray(value)) return value.some(hasLoneSurrogate);
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).some(([key, item]) => LONE_SURROGATE.test(key) || hasLoneSurrogate(item));
  }
  return false;
}
