/**
 * The one HTML-escaping rule of the web UI. Every page is built with the `html` tag, which
 * escapes each interpolated value unless it is itself the result of `html`: index lines come
 * from upstreams and may hold anything (`<script>`, quotes, `javascript:` URLs), so nothing
 * reaches a page unescaped by accident.
 */

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Markup that is already safe: only `html` makes one. */
export class SafeHtml {
  constructor(readonly value: string) {}

  toString(): string {
    return this.value;
  }
}

/** Text safe in element content and in quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

/** A value a template may hold: escaped text, safe markup, lists of either, or nothing. */
export type HtmlValue = SafeHtml | string | number | boolean | null | undefined | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value instanceof SafeHtml) return value.value;
  if (value === null || value === undefined || value === false || value === true) return '';
  if (Array.isArray(value)) {
    let out = '';
    for (const item of value as readonly HtmlValue[]) out += render(item);
    return out;
  }
  return escapeHtml(String(value));
}

/** Tagged template: html`<p>${text}</p>` escapes `text`; nested html`` results are kept as is. */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let out = strings[0] as string;
  for (let i = 0; i < values.length; i++) out += render(values[i] as HtmlValue) + (strings[i + 1] as string);
  return new SafeHtml(out);
}

/**
 * An upstream URL as a link target, or undefined: only absolute http(s) URLs, so a line's
 * `repository` cannot be `javascript:` or `data:`, nor a relative path into this registry.
 */
export function safeHttpUrl(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length > 2000) return undefined;
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  // Credentials in a link would be shown to every reader and sent to the host.
  if (url.username !== '' || url.password !== '') return undefined;
  return url.href;
}
