import type { HourlyCount } from '../status/status-report.js';
import { html, type SafeHtml } from './html.js';

const WIDTH = 720;
const HEIGHT = 220;
const LEFT = 44;
const RIGHT = 8;
const TOP = 12;
const BOTTOM = 28;

/**
 * Archive downloads per hour as an inline SVG bar chart, drawn on the server: no chart library,
 * no script. Colours come from the stylesheet (classes), so dark mode applies. Each bar has a
 * tooltip; screen readers get the title, a one-line summary, and the table after the chart.
 */
export function downloadChart(hours: readonly HourlyCount[]): SafeHtml {
  const total = hours.reduce((sum, h) => sum + h.count, 0);
  const peak = hours.reduce<HourlyCount | undefined>(
    (best, h) => (!best || h.count > best.count ? h : best),
    undefined,
  );
  const top = niceCeiling(peak?.count ?? 0);
  const plotWidth = WIDTH - LEFT - RIGHT;
  const plotHeight = HEIGHT - TOP - BOTTOM;
  const slot = hours.length > 0 ? plotWidth / hours.length : plotWidth;
  const summary =
    hours.length === 0
      ? 'No download counts recorded yet.'
      : `${total} ${total === 1 ? 'download' : 'downloads'} in the last ${hours.length} hours` +
        (peak && peak.count > 0 ? `, at most ${peak.count} in the hour from ${hourLabel(peak.hour)}.` : '.');
  const y = (value: number) => TOP + plotHeight - (value / top) * plotHeight;
  const grid = (top >= 2 ? [0, top / 2, top] : [0, top]).map(
    (value) =>
      html`<line class="grid" x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${y(value).toFixed(1)}" y2="${y(value).toFixed(1)}"/><text class="axis" x="${LEFT - 6}" y="${(y(value) + 4).toFixed(1)}" text-anchor="end">${formatCount(value)}</text>`,
  );
  const bars = hours.map((h, i) => {
    const height = (h.count / top) * plotHeight;
    return html`<rect class="bar" x="${(LEFT + i * slot + slot * 0.1).toFixed(1)}" y="${(TOP + plotHeight - height).toFixed(1)}" width="${(slot * 0.8).toFixed(1)}" height="${height.toFixed(1)}" rx="1.5"><title>${hourLabel(h.hour)}: ${h.count} ${h.count === 1 ? 'download' : 'downloads'}</title></rect>`;
  });
  // An hour label every 6 hours (UTC), where the hour is a multiple of 6: easy to read across days.
  const ticks = hours.flatMap((h, i) => {
    const hour = Number(h.hour.slice(11, 13));
    if (Number.isNaN(hour) || hour % 6 !== 0) return [];
    const x = LEFT + i * slot + slot / 2;
    const label = hour === 0 ? h.hour.slice(5, 10) : `${h.hour.slice(11, 13)}:00`;
    return [
      html`<text class="axis" x="${x.toFixed(1)}" y="${HEIGHT - 8}" text-anchor="middle">${label}</text>`,
    ];
  });
  return html`<figure class="chart-figure">
<svg class="chart" id="downloads-chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" preserveAspectRatio="xMidYMid meet">
<title id="chart-title">Archive downloads per hour (UTC)</title>
<desc id="chart-desc">${summary}</desc>
${grid}
${bars}
${ticks}
</svg>
<figcaption class="muted">${summary}</figcaption>
</figure>
<details>
<summary>Show the numbers as a table</summary>
<div class="table-wrap"><table id="downloads-table">
<thead><tr><th scope="col">Hour (UTC)</th><th scope="col" class="num">Downloads</th></tr></thead>
<tbody>${hours.map((h) => html`<tr><td>${hourLabel(h.hour)}</td><td class="num">${h.count}</td></tr>`)}</tbody>
</table></div>
</details>`;
}

/** 1, 2, 5, 10, 20, 50, ...: the smallest such value at or above `value` (at least 1). */
export function niceCeiling(value: number): number {
  if (value <= 1) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

function formatCount(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function hourLabel(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}
