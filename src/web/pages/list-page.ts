import type { Catalog, ModuleSummary } from '../catalog.js';
import { html, type SafeHtml } from '../html.js';
import { dateCell, howToUse, page, sourceBadge } from '../layout.js';
import { listHref, moduleHref } from '../links.js';
import type { WebContext } from '../web-context.js';

export const PAGE_SIZE = 50;

export type SortOrder = 'relevance' | 'updated' | 'name';

/** The list page's request, read leniently: unknown values fall back to the defaults. */
export interface ListQuery {
  q: string;
  owner: string;
  source: string;
  sort: SortOrder;
  page: number;
}

export function readListQuery(query: URLSearchParams): ListQuery {
  const q = (query.get('q') ?? '').trim().slice(0, 200);
  const sortParam = query.get('sort');
  const sort: SortOrder =
    sortParam === 'name' || sortParam === 'updated' || sortParam === 'relevance'
      ? sortParam
      : q !== ''
        ? 'relevance'
        : 'updated';
  const pageNumber = Number.parseInt(query.get('page') ?? '1', 10);
  return {
    q,
    owner: (query.get('owner') ?? '').slice(0, 200),
    source: (query.get('source') ?? '').slice(0, 200),
    sort,
    page: Number.isSafeInteger(pageNumber) && pageNumber > 0 ? pageNumber : 1,
  };
}

/**
 * The modules matching the query, in its order. Every word of `q` must occur in the name, the
 * description or a keyword; matches in the name rank first.
 */
export function filterModules(catalog: Catalog, query: ListQuery): ModuleSummary[] {
  const words = query.q.toLowerCase().split(/\s+/).filter(Boolean);
  const found = catalog.modules.filter(
    (m) =>
      (query.owner === '' || m.owner === query.owner) &&
      (query.source === '' || m.sources.includes(query.source)) &&
      words.every((w) => m.searchText.includes(w)),
  );
  if (query.sort === 'updated') {
    // ISO dates with the same offset compare as text; undated modules go last.
    return found.sort((a, b) => (b.updated ?? '').localeCompare(a.updated ?? ''));
  }
  if (query.sort === 'relevance' && words.length > 0) {
    const rank = (m: ModuleSummary) => {
      const name = m.name.toLowerCase();
      const unqualified = name.slice(name.lastIndexOf('/') + 1);
      if (words.length === 1 && (name === words[0] || unqualified === words[0])) return 0;
      return words.every((w) => name.includes(w)) ? 1 : 2;
    };
    // Array.prototype.sort is stable: equal ranks keep the name order.
    return found
      .map((m) => ({ m, r: rank(m) }))
      .sort((a, b) => a.r - b.r)
      .map(({ m }) => m);
  }
  return found;
}

export function renderListPage(ctx: WebContext, catalog: Catalog, query: ListQuery): SafeHtml {
  const matches = filterModules(catalog, query);
  const pages = Math.max(1, Math.ceil(matches.length / PAGE_SIZE));
  const current = Math.min(query.page, pages);
  const shown = matches.slice((current - 1) * PAGE_SIZE, current * PAGE_SIZE);
  const sourceNames = catalog.sources.map((s) => s.name);
  const filtered = query.q !== '' || query.owner !== '' || query.source !== '';
  const link = (pageNumber: number) =>
    listHref({
      q: query.q,
      owner: query.owner,
      source: query.source,
      sort: query.sort === defaultSort(query) ? undefined : query.sort,
      page: pageNumber === 1 ? undefined : pageNumber,
    });

  const hero = html`<div class="hero">
<div class="container">
<h1>${ctx.registryName}</h1>
<p>A MoonBit package registry${ctx.mode === 'proxy' ? ' (pull-through: modules not stored yet are fetched on first use)' : ''}.</p>
<ul class="stats" aria-label="Registry contents">
<li><strong>${catalog.modules.length}</strong> modules</li>
<li><strong>${catalog.versions}</strong> versions</li>
<li><strong>${catalog.owners.length}</strong> owners</li>
<li><strong>${catalog.sources.length}</strong> ${catalog.sources.length === 1 ? 'source' : 'sources'}</li>
</ul>
<form class="search-form" role="search" action="/" method="get">
<div class="field-q"><label for="q">Search modules</label><input id="q" name="q" type="search" value="${query.q}" placeholder="Name, description or keyword" autocomplete="off"></div>
<div><label for="owner">Owner</label><select id="owner" name="owner" data-autosubmit>
<option value="">All owners</option>
${catalog.owners.map((o) => html`<option value="${o.name}"${o.name === query.owner ? html` selected` : ''}>${o.name} (${o.count})</option>`)}
</select></div>
${
  catalog.sources.length > 1
    ? html`<div><label for="source">Source</label><select id="source" name="source" data-autosubmit>
<option value="">All sources</option>
${catalog.sources.map((s) => html`<option value="${s.name}"${s.name === query.source ? html` selected` : ''}>${s.name} (${s.count})</option>`)}
</select></div>`
    : ''
}
<div><label for="sort">Sort by</label><select id="sort" name="sort" data-autosubmit>
${(['relevance', 'updated', 'name'] as const).map(
  (s) =>
    html`<option value="${s}"${s === query.sort ? html` selected` : ''}>${{ relevance: 'Best match', updated: 'Recently updated', name: 'Name' }[s]}</option>`,
)}
</select></div>
<button class="button" type="submit">Search</button>
</form>
</div>
</div>`;

  const heading = filtered
    ? `${matches.length} ${matches.length === 1 ? 'module' : 'modules'} found`
    : `All ${matches.length} modules`;
  const body = html`<div class="layout">
<section aria-labelledby="results-title">
<div class="results-head">
<h2 id="results-title" aria-live="polite">${heading}${query.q !== '' ? html` for “${query.q}”` : ''}${query.owner !== '' ? html` by ${query.owner}` : ''}${query.source !== '' ? html` from ${query.source}` : ''}</h2>
${filtered ? html`<a class="clear-link" href="/">Clear filters</a>` : ''}
</div>
${
  shown.length === 0
    ? html`<p class="card">No module matches. Try fewer words, or <a href="/">show all modules</a>.</p>`
    : html`<ol class="module-list" id="modules">${shown.map((m) => moduleItem(m, sourceNames))}</ol>`
}
${
  pages > 1
    ? html`<nav class="pager" aria-label="Pages">
${current > 1 ? html`<a href="${link(current - 1)}" rel="prev">← Previous</a>` : html`<span></span>`}
<span class="muted">Page ${current} of ${pages}</span>
${current < pages ? html`<a href="${link(current + 1)}" rel="next">Next →</a>` : html`<span></span>`}
</nav>`
    : ''
}
</section>
<aside aria-label="About this registry">
${howToUse(ctx, undefined)}
<section class="card" aria-labelledby="sources-title">
<h2 id="sources-title">Sources</h2>
${
  catalog.sources.length === 0
    ? html`<p class="muted">No version served yet.</p>`
    : html`<ul class="dep-list">${catalog.sources.map(
        (s) =>
          html`<li><a href="${listHref({ source: s.name })}">${sourceBadge(s.name, sourceNames)}</a><span class="muted">${s.count} versions</span></li>`,
      )}</ul>`
}
<p class="muted">Health, syncs and downloads: <a href="/status">status page</a>.</p>
</section>
</aside>
</div>`;
  return page(ctx, { title: query.q ? `Search: ${query.q}` : 'Packages', section: 'packages', hero, body });
}

function defaultSort(query: ListQuery): SortOrder {
  return query.q !== '' ? 'relevance' : 'updated';
}

function moduleItem(m: ModuleSummary, sourceNames: readonly string[]): SafeHtml {
  return html`<li class="module-item">
<h3><a href="${moduleHref(m.name)}">${m.name}</a><span class="version">${m.latest}</span>${m.deprecated ? html`<span class="badge deprecated">deprecated</span>` : ''}</h3>
${m.description ? html`<p class="desc">${m.description}</p>` : ''}
<ul class="meta">
<li><a href="${listHref({ owner: m.owner })}" aria-label="Modules by ${m.owner}">${m.owner}</a></li>
<li>Updated ${dateCell(m.updated)}</li>
${m.license ? html`<li>${m.license}</li>` : ''}
<li>${m.versionCount} ${m.versionCount === 1 ? 'version' : 'versions'}</li>
${m.sources.map((s) => html`<li>${sourceBadge(s, sourceNames)}</li>`)}
</ul>
${
  m.keywords.length > 0
    ? html`<ul class="keywords" aria-label="Keywords">${m.keywords.map((k) => html`<li><a href="${listHref({ q: k })}">${k}</a></li>`)}</ul>`
    : ''
}
</li>`;
}
