import type { Command } from 'commander';
import { registryUrl } from '../../config/registry-url.js';
import { formatBytes } from '../../core/format-bytes.js';
import { readProvenance, sourceOf } from '../../registry/provenance.js';
import { collectStatus, countBySource, savedLiveFacts } from '../../status/collect-status.js';
import type { GitCacheStats, StatusReport } from '../../status/status-report.js';
import { printLine } from '../output.js';
import { openCommandRegistry } from './registry-dir.js';

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('sources, index, archives, syncs and recent mirror runs: what the status page shows')
    .option('--json', 'print the report as JSON (the same as GET /status)', false)
    .action(async (options: { json: boolean }, command: Command) => {
      const registry = await openCommandRegistry(command);
      const live = await savedLiveFacts(registry.layout);
      const provenance = await readProvenance(registry.layout.provenanceFile);
      const report = await collectStatus(registry, live, {
        // Proxy mode's sources are in the running server's memory: its report has them.
        servedBySource: async (index) => countBySource(index, (m, v, c) => sourceOf(provenance, m, v, c)),
        // base_url first; else the address the running server really took (--port may differ).
        publicUrl:
          (!registry.config.server.base_url && live?.server.url) || registryUrl(registry.config.server),
      });
      if (options.json) printLine(JSON.stringify(report, null, 2));
      else printLine(formatStatus(report));
    });
}

const short = (commit: string | null) => (commit ? commit.slice(0, 12) : '-');
const when = (iso: string | null) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

export function formatStatus(report: StatusReport): string {
  const lines: string[] = [];
  const { registry, server, index, archives, sync } = report;
  lines.push(`Registry "${registry.name}" (${registry.mode} mode): MOONCAKES_REGISTRY=${registry.url}`);
  lines.push(
    server.running
      ? `Server:   running, pid ${server.pid}, since ${when(server.started_at)}, at ${server.url}`
      : 'Server:   not running (live facts such as source health come from a running serve)',
  );
  if (server.git_cache) lines.push(`Git:      ${formatGitCache(server.git_cache)}`);
  lines.push(`Index:    ${index.modules} modules, ${index.versions} versions, commit ${short(index.commit)}`);
  const where = archives.store === 'disk' ? '' : ` in ${archives.store}`;
  lines.push(`Archives: ${archives.count} stored, ${formatBytes(archives.bytes)}${where}`);
  const last = sync.last_run
    ? `last ${when(sync.last_run.at)} (${sync.last_run.ok ? 'ok' : `failed: ${sync.last_run.error ?? ''}`}${sync.last_run.changed ? ', index changed' : ''})`
    : 'no sync yet';
  lines.push(
    `Sync:     ${sync.auto ? `every ${sync.interval}` : 'manual'}; ${last}; next ${when(sync.next_run)}`,
  );
  lines.push('', 'Sources:');
  const rows = [
    ['NAME', 'STATE', 'PRIORITY', 'VERSIONS', 'LAST SYNC', 'INDEX', 'LAST ERROR'],
    ...report.sources.map((s) => [
      `${s.name}${s.default ? '*' : ''}`,
      s.state,
      String(s.priority),
      String(s.versions_served),
      when(s.last_sync),
      short(s.index_commit),
      s.last_error ?? '',
    ]),
  ];
  lines.push(...table(rows).map((row) => `  ${row}`));
  lines.push('', 'Recent mirror runs:');
  if (report.mirror_runs.length === 0) lines.push('  none');
  for (const run of report.mirror_runs.slice(0, 10)) {
    const asked = run.request.full ? '--full' : run.request.patterns.join(' ');
    lines.push(
      `  ${when(run.finished_at)}  ${run.outcome.padEnd(11)} ${asked}: ${run.downloaded} downloaded (${formatBytes(run.bytes)}), ${run.already_stored} already stored, ${run.failed} failed${run.error ? `; ${run.error}` : ''}`,
    );
  }
  const total = report.downloads.reduce((sum, h) => sum + h.count, 0);
  const lastHour = report.downloads.at(-1)?.count ?? 0;
  lines.push('', `Downloads: ${total} in the last 48 hours, ${lastHour} this hour`);
  return lines.join('\n');
}

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}

function formatGitCache(cache: GitCacheStats): string {
  if (cache.max_bytes === 0) return `answer cache off; ${cache.misses} git runs`;
  const asked = cache.hits + cache.shared + cache.misses;
  const rate = asked === 0 ? '-' : `${Math.round((100 * (cache.hits + cache.shared)) / asked)}%`;
  return (
    `answer cache ${cache.entries} answers, ${formatBytes(cache.bytes)} of ${formatBytes(cache.max_bytes)}; ` +
    `${cache.hits} hits, ${cache.shared} shared, ${cache.misses} git runs (${rate} without git), ` +
    `${cache.warmups} warm-ups, ${cache.evictions} evictions`
  );
}
