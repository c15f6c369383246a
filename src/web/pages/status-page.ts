import { formatBytes } from '../../core/format-bytes.js';
import type { MirrorRunRecord, SourceState, StatusReport } from '../../status/status-report.js';
import { downloadChart } from '../download-chart.js';
import { html, type SafeHtml, safeHttpUrl } from '../html.js';
import { howToUse, page } from '../layout.js';
import type { WebContext } from '../web-context.js';

/** `/status`: the StatusReport, for people: sources, syncs, disk, mirror runs, downloads. */
export function renderStatusPage(ctx: WebContext, report: StatusReport): SafeHtml {
  const { index, archives, sync } = report;
  const body = html`<h1>Status</h1>
<p class="lead">${report.registry.name} · ${report.registry.mode === 'proxy' ? 'pull-through mode' : 'mirror mode'}${
    report.server.running && report.server.started_at
      ? html` · serving since ${time(report.server.started_at)}`
      : ''
  }</p>
<div class="tiles">
<section class="tile" aria-labelledby="tile-index"><h2 id="tile-index">Index</h2>
<span class="big">${index.modules} modules</span>
<p>${index.versions} versions · commit ${index.commit ? html`<code title="${index.commit}">${index.commit.slice(0, 12)}</code>` : 'none yet'}</p></section>
<section class="tile" aria-labelledby="tile-archives"><h2 id="tile-archives">Archives</h2>
<span class="big">${archives.count} stored</span>
<p>${formatBytes(archives.bytes)} ${archives.store === 'disk' ? 'on disk' : `in ${archives.store}`}</p></section>
<section class="tile" aria-labelledby="tile-sync"><h2 id="tile-sync">Last sync</h2>
<span class="big">${sync.last_run ? html`${sync.last_run.ok ? html`<span class="badge ok">ok</span>` : html`<span class="badge bad">failed</span>`} ${time(sync.last_run.at)}` : 'never'}</span>
<p>${sync.last_run?.error ? sync.last_run.error : sync.last_run ? (sync.last_run.changed ? 'the index changed' : 'no change') : 'no sync since the server started'}</p></section>
<section class="tile" aria-labelledby="tile-next"><h2 id="tile-next">Next sync</h2>
<span class="big">${sync.next_run ? time(sync.next_run) : 'not scheduled'}</span>
<p>${sync.auto ? `automatic, every ${sync.interval ?? '?'}` : 'automatic sync is off'}</p></section>
</div>
<section class="card" aria-labelledby="downloads-title">
<h2 id="downloads-title">Archive downloads per hour</h2>
${downloadChart(report.downloads)}
</section>
<section class="card" aria-labelledby="sources-title">
<h2 id="sources-title">Sources (${report.sources.length})</h2>
<div class="table-wrap"><table id="sources">
<thead><tr><th scope="col">Source</th><th scope="col">State</th><th scope="col" class="num">Priority</th><th scope="col">Last sync</th><th scope="col">Index commit</th><th scope="col" class="num">Versions served</th></tr></thead>
<tbody>${report.sources.map(
    (s) => html`<tr>
<th scope="row">${s.name}${s.default ? html` <span class="badge idle">default</span>` : ''}<br><span class="muted mono">${displayUrl(s.url)}</span></th>
<td>${stateBadge(s.state)}${s.last_error ? html`<br><span class="muted">${s.last_error}</span>` : ''}</td>
<td class="num">${s.priority}</td>
<td>${s.last_sync ? time(s.last_sync) : html`<span class="muted">never</span>`}</td>
<td>${s.index_commit ? html`<code title="${s.index_commit}">${s.index_commit.slice(0, 12)}</code>` : html`<span class="muted">none</span>`}</td>
<td class="num">${s.versions_served}</td>
</tr>`,
  )}</tbody>
</table></div>
</section>
<section class="card" aria-labelledby="runs-title">
<h2 id="runs-title">Recent mirror runs</h2>
${
  report.mirror_runs.length === 0
    ? html`<p class="muted">No mirror run recorded.</p>`
    : html`<div class="table-wrap"><table id="mirror-runs">
<thead><tr><th scope="col">Started</th><th scope="col">Request</th><th scope="col">Outcome</th><th scope="col" class="num">Downloaded</th><th scope="col" class="num">Already stored</th><th scope="col" class="num">Failed</th><th scope="col" class="num">Size</th><th scope="col" class="num">Took</th></tr></thead>
<tbody>${report.mirror_runs.map(runRow)}</tbody>
</table></div>`
}
</section>
${howToUse(ctx, undefined)}`;
  return page(ctx, { title: 'Status', section: 'status', body });
}

function runRow(run: MirrorRunRecord): SafeHtml {
  const { request } = run;
  const what = [
    ...(request.full ? ['--full'] : request.patterns),
    ...(request.strict ? ['--strict'] : []),
    ...(request.source ? [`-s ${request.source}`] : []),
  ].join(' ');
  const seconds = (Date.parse(run.finished_at) - Date.parse(run.started_at)) / 1000;
  const outcome = {
    ok: html`<span class="badge ok">ok</span>`,
    failed: html`<span class="badge bad">failed</span>`,
    interrupted: html`<span class="badge warn">interrupted</span>`,
    error: html`<span class="badge bad">error</span>`,
  }[run.outcome];
  return html`<tr>
<td>${time(run.started_at)}</td>
<td><code>${what || '(no pattern)'}</code></td>
<td>${outcome}${run.error ? html`<br><span class="muted">${run.error}</span>` : ''}</td>
<td class="num">${run.downloaded}</td>
<td class="num">${run.already_stored}</td>
<td class="num">${run.failed}</td>
<td class="num">${formatBytes(run.bytes)}</td>
<td class="num">${Number.isFinite(seconds) ? `${seconds.toFixed(1)} s` : ''}</td>
</tr>`;
}

function stateBadge(state: SourceState): SafeHtml {
  const kind = { ok: 'ok', failing: 'bad', unknown: 'idle', disabled: 'idle' }[state];
  return html`<span class="badge ${kind}">${state}</span>`;
}

/** Shown, never linked: a source URL is for operators, and may not answer browsers. */
function displayUrl(url: string): string {
  return safeHttpUrl(url) ?? url;
}

/** An ISO time as `YYYY-MM-DD HH:MM UTC`, with the exact value for machines and on hover. */
function time(iso: string): SafeHtml {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return html`${iso}`;
  const exact = new Date(at).toISOString();
  return html`<time datetime="${exact}" title="${exact}">${exact.slice(0, 10)} ${exact.slice(11, 16)} UTC</time>`;
}
