import { html, type SafeHtml } from './html.js';
import { staticHref } from './static-assets.js';
import type { WebContext } from './web-context.js';

export type Section = 'packages' | 'status' | undefined;

export interface PageOptions {
  /** The part before ` · <registry name>` in the title. */
  title: string;
  section: Section;
  /** Content of <main>, which the skip link jumps to. */
  body: SafeHtml;
  /** A band above the main container (the list page's search). */
  hero?: SafeHtml;
}

// The favicon's crescent (static/favicon-svg.ts), decorative here: the name beside it is the link text.
const MOON = html`<svg width="30" height="30" viewBox="0 0 32 32" aria-hidden="true" focusable="false"><rect width="32" height="32" rx="8" fill="#2c1f63"/><circle cx="15" cy="17" r="10" fill="#f4b942"/><circle cx="20.5" cy="12.5" r="8" fill="#2c1f63"/></svg>`;

/** The frame of every page: landmarks, skip link, navigation, one stylesheet, one small script. */
export function page(ctx: WebContext, options: PageOptions): SafeHtml {
  const nav = (section: Section, href: string, label: string) =>
    html`<li><a href="${href}"${options.section === section ? html` aria-current="page"` : ''}>${label}</a></li>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title} · ${ctx.registryName}</title>
<meta name="color-scheme" content="light dark">
<link rel="stylesheet" href="${staticHref('style.css')}">
<link rel="icon" href="${staticHref('favicon.svg')}" type="image/svg+xml">
<script src="${staticHref('app.js')}" defer></script>
</head>
<body>
<a class="skip-link" href="#main">Skip to content</a>
<header class="site-header">
<div class="container">
<a class="brand" href="/">${MOON}<span>${ctx.registryName}</span><small>MoonBit registry</small></a>
<nav class="site-nav" aria-label="Main">
<ul>
${nav('packages', '/', 'Packages')}
${nav('status', '/status', 'Status')}
<li><a href="/#how-to-use">How to use</a></li>
</ul>
</nav>
</div>
</header>
${options.hero ?? ''}
<main id="main" class="container page" tabindex="-1">
${options.body}
</main>
<footer class="site-footer">
<div class="container">
<p>Served by moonbit-registry (${ctx.mode === 'proxy' ? 'pull-through mode' : 'mirror mode'}) · <a href="/status">Status</a></p>
</div>
</footer>
</body>
</html>
`;
}

/** The copy-ready command box; the copy button appears only when the script runs. */
export function commandBox(id: string, command: string, label: string): SafeHtml {
  return html`<div class="command"><code id="${id}">${command}</code><button type="button" class="copy" data-copy="${id}" aria-label="${label}" hidden>Copy</button></div>`;
}

/** "How to use this registry": the exact line for this server's public URL. */
export function howToUse(ctx: WebContext, example: string | undefined): SafeHtml {
  return html`<section class="card" id="how-to-use" aria-labelledby="how-to-use-title">
<h2 id="how-to-use-title">How to use this registry</h2>
<p>Point <code>moon</code> at this registry, then add modules as usual:</p>
${commandBox('use-cmd', usageLine(ctx.publicUrl), 'Copy the moon update command')}
${example ? commandBox('use-add', `moon add ${example}`, 'Copy the moon add command') : ''}
<p class="muted">Set <code>MOONCAKES_REGISTRY</code> for every later <code>moon</code> command too (export it in your shell or CI).</p>
<h3>Publish your own modules</h3>
<p>Ask the registry's operator for a publish token (<code>moonbit-registry token add NAME --publish "company/*"</code>), keep it in a <code>MOON_HOME</code> of its own so your mooncakes.io login stays, and publish with <code>moon</code>:</p>
${commandBox('publish-cmd', publishLine(ctx.publicUrl), 'Copy the moon publish commands')}
<p class="muted">Or, without <code>moon</code>: <code>moonbit-registry publish . --registry ${ctx.publicUrl} --token TOKEN</code>.</p>
</section>`;
}

/** The shell lines that make `moon publish` upload to this registry with its own token. */
export function publishLine(publicUrl: string): string {
  return `export MOON_HOME=~/.moon-registry && mkdir -p $MOON_HOME && echo '{"token": "TOKEN"}' > $MOON_HOME/credentials.json && MOONCAKES_REGISTRY=${publicUrl} moon publish`;
}

export function usageLine(publicUrl: string): string {
  return `MOONCAKES_REGISTRY=${publicUrl} moon update`;
}

/** A date from an index line (`created_at`), shown as its UTC day; the full time on hover. */
export function dateCell(value: string | undefined): SafeHtml {
  if (value === undefined) return html`<span class="muted">unknown</span>`;
  const time = Date.parse(value);
  if (Number.isNaN(time)) return html`<span class="muted">unknown</span>`;
  const iso = new Date(time).toISOString();
  return html`<time datetime="${iso}" title="${iso.replace('T', ' ').slice(0, 19)} UTC">${iso.slice(0, 10)}</time>`;
}

/** A source's badge; its colour comes from its position among the sources, stable per page. */
export function sourceBadge(name: string, colours: readonly string[]): SafeHtml {
  const index = colours.indexOf(name);
  const colour = index < 0 ? 5 : index % 5;
  return html`<span class="badge source s${colour}" title="Source: ${name}">${name}</span>`;
}
