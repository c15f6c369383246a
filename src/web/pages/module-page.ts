import { selectForRequirement } from '../../core/version.js';
import type { IndexEntry } from '../../index/index-file.js';
import { type Catalog, type LineFacts, lineFacts, newestFirst } from '../catalog.js';
import { html, type SafeHtml, safeHttpUrl } from '../html.js';
import { commandBox, dateCell, page, sourceBadge } from '../layout.js';
import { listHref, moduleHref, ownerOf } from '../links.js';
import type { WebContext } from '../web-context.js';

/** One served version with what the page shows of it. */
export interface VersionRow {
  entry: IndexEntry;
  facts: LineFacts;
  source: string | undefined;
  stored: boolean;
}

/** Reads every version of a module, newest first, with its source and whether it is stored. */
export async function loadVersions(
  ctx: WebContext,
  module: string,
  entries: Map<string, IndexEntry>,
): Promise<VersionRow[]> {
  return Promise.all(
    newestFirst(entries.values()).map(async (entry) => ({
      entry,
      facts: lineFacts(entry.raw),
      source: await ctx.sourceOf(module, entry.version, entry.checksum),
      stored: await ctx.isStored(module, entry.version, entry.checksum),
    })),
  );
}

/**
 * A module and one of its versions (the newest unless `?version=` names another): the install
 * line, its dependencies, the module's dependents and every version.
 */
export function renderModulePage(
  ctx: WebContext,
  catalog: Catalog,
  module: string,
  rows: VersionRow[],
  selected: VersionRow,
): SafeHtml {
  const { entry, facts } = selected;
  const newest = rows[0] as VersionRow;
  const owner = ownerOf(module);
  const sourceNames = catalog.sources.map((s) => s.name);
  const repository = safeHttpUrl(facts.repository);
  const homepage = safeHttpUrl(facts.homepage);
  const dependents = catalog.dependents.get(module) ?? [];
  const isNewest = selected === newest;

  const body = html`<nav class="breadcrumb" aria-label="Breadcrumb"><ol>
<li><a href="/">Packages</a></li>
<li><a href="${listHref({ owner })}">${owner}</a></li>
<li><span aria-current="page">${module.slice(owner.length + 1)}</span></li>
</ol></nav>
<div class="module-title"><h1>${module}</h1><span class="version">${entry.version}${isNewest ? ' (latest)' : ''}</span></div>
${facts.description ? html`<p class="lead">${facts.description}</p>` : html`<p class="lead">No description.</p>`}
${facts.deprecated !== undefined ? html`<p class="notice deprecated" role="note"><strong>Deprecated.</strong> ${facts.deprecated}</p>` : ''}
${facts.yanked !== undefined ? html`<p class="notice yanked" role="note"><strong>Version ${entry.version} is yanked.</strong> ${facts.yanked}</p>` : ''}
${isNewest ? '' : html`<p class="notice deprecated" role="note">You are looking at an older version. <a href="${moduleHref(module)}">Show the latest (${newest.entry.version})</a>.</p>`}
<div class="layout">
<div>
<section class="card" aria-labelledby="install-title">
<h2 id="install-title">Install</h2>
${commandBox('add-cmd', `moon add ${module}@${entry.version}`, `Copy the moon add command for ${module}`)}
<p class="muted">With <code>MOONCAKES_REGISTRY=${ctx.publicUrl}</code> set (see <a href="/#how-to-use">how to use this registry</a>).</p>
</section>
<section class="card" aria-labelledby="deps-title">
<h2 id="deps-title">Dependencies of ${entry.version} (${entry.deps.length})</h2>
${
  entry.deps.length === 0
    ? html`<p class="muted">None.</p>`
    : html`<ul class="dep-list" id="dependencies">${entry.deps.map((dep) => {
        const served = catalog.snapshot.modules.get(dep.module);
        if (!served) {
          return html`<li><span>${dep.module}</span><span class="version">${dep.requirement}</span><span class="badge idle">not served here</span></li>`;
        }
        // The version `moon` would pick for this requirement, as in PROTOCOL.md 6.
        const pick = selectForRequirement(dep.requirement, served.keys());
        return html`<li><a href="${moduleHref(dep.module, pick)}">${dep.module}</a><span class="version">${dep.requirement}${pick && pick !== dep.requirement ? html` → ${pick}` : ''}</span></li>`;
      })}</ul>`
}
</section>
<section class="card" aria-labelledby="dependents-title">
<h2 id="dependents-title">Dependents (${dependents.length})</h2>
${
  dependents.length === 0
    ? html`<p class="muted">No served module depends on ${module} in its latest version.</p>`
    : html`<p class="muted">Served modules whose latest version depends on this one.</p><ul class="dep-list columns" id="dependents">${dependents.map(
        (name) => html`<li><a href="${moduleHref(name)}">${name}</a></li>`,
      )}</ul>`
}
</section>
<section class="card" aria-labelledby="versions-title">
<h2 id="versions-title">Versions (${rows.length})</h2>
<div class="table-wrap">
<table id="versions">
<thead><tr><th scope="col">Version</th><th scope="col">Published</th><th scope="col">Source</th><th scope="col">Archive</th><th scope="col">Notes</th></tr></thead>
<tbody>
${rows.map((row) => versionRow(module, row, row === selected, ctx.mode, sourceNames))}
</tbody>
</table>
</div>
</section>
</div>
<aside aria-label="About ${module}">
<section class="card" aria-labelledby="about-title">
<h2 id="about-title">About</h2>
<dl class="facts">
<dt>Owner</dt><dd><a href="${listHref({ owner })}">${owner}</a></dd>
<dt>Latest</dt><dd><a href="${moduleHref(module)}">${newest.entry.version}</a></dd>
<dt>Published</dt><dd>${dateCell(facts.createdAt)}</dd>
<dt>License</dt><dd>${facts.license ?? html`<span class="muted">not given</span>`}</dd>
<dt>Repository</dt><dd>${repositoryLink(repository, facts.repository)}</dd>
${homepage ? html`<dt>Homepage</dt><dd><a href="${homepage}" rel="noopener noreferrer nofollow">${homepage}</a></dd>` : ''}
<dt>Source</dt><dd>${selected.source ? sourceBadge(selected.source, sourceNames) : html`<span class="muted">unknown</span>`}</dd>
<dt>Archive</dt><dd>${archiveState(selected.stored, ctx.mode)}</dd>
</dl>
${
  facts.keywords.length > 0
    ? html`<ul class="keywords" aria-label="Keywords">${facts.keywords.map((k) => html`<li><a href="${listHref({ q: k })}">${k}</a></li>`)}</ul>`
    : ''
}
</section>
</aside>
</div>`;
  return page(ctx, { title: `${module} ${entry.version}`, section: 'packages', body });
}

function repositoryLink(url: string | undefined, raw: unknown): SafeHtml {
  if (url)
    return html`<a href="${url}" rel="noopener noreferrer nofollow">${url.replace(/^https?:\/\//, '')}</a>`;
  // Not a link we would follow (git@..., a typo): shown as text, so the reader still sees it.
  if (typeof raw === 'string' && raw.trim() !== '') return html`<span class="mono">${raw}</span>`;
  return html`<span class="muted">not given</span>`;
}

function archiveState(stored: boolean, mode: WebContext['mode']): SafeHtml {
  if (stored) return html`<span class="badge ok">stored</span>`;
  return mode === 'proxy'
    ? html`<span class="badge idle" title="Fetched from its source on first download">fetchable</span>`
    : html`<span class="badge bad">missing</span>`;
}

function versionRow(
  module: string,
  row: VersionRow,
  selected: boolean,
  mode: WebContext['mode'],
  sourceNames: readonly string[],
): SafeHtml {
  const { entry, facts } = row;
  return html`<tr${selected ? html` class="selected" aria-current="true"` : ''}>
<td><a class="mono" href="${moduleHref(module, entry.version)}">${entry.version}</a></td>
<td>${dateCell(facts.createdAt)}</td>
<td>${row.source ? sourceBadge(row.source, sourceNames) : html`<span class="muted">unknown</span>`}</td>
<td>${archiveState(row.stored, mode)}</td>
<td>${facts.yanked !== undefined ? html`<span class="badge yanked" title="${facts.yanked}">yanked</span> ` : ''}${facts.deprecated !== undefined ? html`<span class="badge deprecated" title="${facts.deprecated}">deprecated</span>` : ''}</td>
</tr>`;
}
